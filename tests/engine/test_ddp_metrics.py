"""Validation metrics under DDP (2 CPU processes, gloo) equal those of one process.

The loaders hold an odd number of slices of 3 patients, so a distributed sampler
puts slices of every patient on both ranks and pads one rank with a repeated
slice: only gathering per-image counts keyed by sample and patient gives the
whole-split figures (per-patient Dice included).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from braintumor.config import OptimConfig
from braintumor.data import create_format
from braintumor.data.dataset import SliceDataset, collate
from braintumor.engine.module import BrainTumorModule
from braintumor.engine.tasks import create_task
from braintumor.models.registry import create_model


class _Dump(Callback):
    """Writes what rank 0 computed for each validated loader (the full metrics dict)."""

    def __init__(self, folder: Path, tag: str) -> None:
        self.folder, self.tag = folder, tag

    def on_validation_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if trainer.global_rank == 0:
            out = pl_module.val_eval.compute()
            out["callback"] = {k: float(v) for k, v in trainer.callback_metrics.items()}
            (self.folder / f"{self.tag}.json").write_text(json.dumps(out, default=float))


def _module(task_name: str) -> tuple[BrainTumorModule, dict[str, DataLoader]]:
    torch.manual_seed(0)
    fmt = create_format(
        "synthetic",
        n_patients=3,
        slices_per_patient=5,
        size=32,
        modalities=1,
        classes="binary",
    )
    records = fmt.records()
    names = list(fmt.mask_channels) if task_name == "segmentation" else list(fmt.classes)
    task = create_task(task_name, names)
    model_name = "unet" if task_name == "segmentation" else "simple_cnn"
    kwargs = {"n_filters": 4, "depth": 2} if task_name == "segmentation" else {}
    model = create_model(model_name, in_channels=1, num_classes=task.num_outputs, **kwargs)
    module = BrainTumorModule(model, task, OptimConfig(), epochs=1)
    loaders = {
        "val": DataLoader(
            SliceDataset(fmt, records, 32, 1, False, cache=False), 4, collate_fn=collate
        ),
        "test": DataLoader(
            SliceDataset(fmt, records[:11], 32, 1, False, cache=False), 3, collate_fn=collate
        ),
    }
    return module, loaders


def _validate(folder: Path, task_name: str, devices: int) -> dict[str, dict[str, Any]]:
    module, loaders = _module(task_name)
    out = {}
    for split, loader in loaders.items():
        tag = f"{split}-{devices}"
        trainer = L.Trainer(
            accelerator="cpu",
            devices=devices,
            strategy="ddp_spawn" if devices > 1 else "auto",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[_Dump(folder, tag)],
        )
        trainer.validate(module, loader, verbose=False)
        out[split] = json.loads((folder / f"{tag}.json").read_text())
    return out


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)
    return bool(a == b)


@pytest.mark.slow
def test_two_process_validation_equals_one_process(tmp_path: Path) -> None:
    one = _validate(tmp_path, "segmentation", devices=1)
    two = _validate(tmp_path, "segmentation", devices=2)
    for split in ("val", "test"):
        a, b = dict(one[split]), dict(two[split])
        loss_a, loss_b = a["callback"].pop("val_loss"), b["callback"].pop("val_loss")
        assert _close(a, b), (split, a, b)
        # The loss is a per-rank mean averaged over ranks (the padded slice counts twice).
        assert loss_b == pytest.approx(loss_a, rel=0.1)
    seg = one["val"]
    assert seg["n"] == 15 and seg["n_patients"] == 3 and len(seg["per_patient"]) == 3


def _batch(keys: list[str], patients: list[str], seed: int) -> tuple[torch.Tensor, dict[str, Any]]:
    g = torch.Generator().manual_seed(seed)
    n = len(keys)
    batch = {
        "mask": (torch.rand(n, 1, 8, 8, generator=g) > 0.5).float(),
        "label": torch.randint(0, 2, (n,), generator=g),
        "patient_id": patients,
        "path": keys,
    }
    return torch.randn(n, 1, 8, 8, generator=g), batch


@pytest.mark.parametrize("task_name", ["segmentation", "classification"])
def test_gathered_states_count_each_sample_once(task_name: str) -> None:
    names = ["tumor"] if task_name == "segmentation" else ["a", "b"]
    task = create_task(task_name, names)
    keys, patients = [f"s{i}" for i in range(5)], ["p0", "p1", "p0", "p1", "p1"]

    def logits(x: torch.Tensor) -> torch.Tensor:
        return x if task_name == "segmentation" else x.flatten(1)[:, :2]

    x, batch = _batch(keys, patients, 0)
    whole = task.evaluator()
    whole.update(logits(x), batch)
    ranks = []
    # Rank 0 sees samples 0, 2, 4; rank 1 sees 1, 3 and sample 0 again (sampler padding).
    for idx in ([0, 2, 4], [1, 3, 0]):
        ev = task.evaluator()
        part = {k: [v[i] for i in idx] if isinstance(v, list) else v[idx] for k, v in batch.items()}
        ev.update(logits(x[idx]), part)
        ranks.append(ev.state())
    merged = task.evaluator()
    merged.load_states(ranks)
    assert _close(merged.compute(), whole.compute())
