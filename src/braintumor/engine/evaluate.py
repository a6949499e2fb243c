"""Evaluate a model on one split, once, over every sample.

:func:`evaluate_model` is the single evaluation loop: training uses it for the
test split of a fresh run, :func:`evaluate_run` for a saved run (its own saved
split, or a new data set).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from braintumor.data.base import Record
from braintumor.data.dataset import SliceDataset
from braintumor.data.intensity import rescale_intensity
from braintumor.data.registry import intensity_scale
from braintumor.data.splits import load_splits
from braintumor.engine.data import SPLITS, make_loader, open_format, output_names
from braintumor.engine.levers import Levers, postprocessed, with_tta
from braintumor.engine.tasks import Task, create_task
from braintumor.errors import ConfigError, DataError
from braintumor.inference.predictor import pick_device
from braintumor.inference.runs import SPLITS_FILE, card_intensity, jsonable, load_run, write_json


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    task: Task,
    loader: DataLoader,
    loss_fn: nn.Module | None = None,
    device: torch.device | str = "cpu",
    runtime: dict[str, str] | None = None,
    backend: str | None = None,
    levers: Levers | None = None,
) -> dict[str, Any]:
    """Metrics of ``model`` on every sample of ``loader`` (plus ``loss`` and ``n``).

    ``levers`` (segmentation; a card's ``inference`` entry, see
    :mod:`braintumor.engine.levers`): flip TTA and per-volume removal of small 3-D
    components, applied before the metrics; the loss is that of the plain network.

    ``runtime`` (a model card's: precision, memory format) says how the network was
    trained; None: eager fp32. On a CPU it runs in the fastest fp32 variant that
    agrees with eager fp32 on the first batch (channels-last or ONNX Runtime, equal to
    ~1e-6, so reported metrics reproduce; :class:`~braintumor.inference.backends.Runtime`);
    bf16 only where the run was trained in it. ``backend``: ``eager`` / ``onnxruntime``
    / ``auto`` (see there).
    """
    from braintumor.precision import set_layout

    was_training = model.training
    model.eval().to(device)
    device = torch.device(device)
    network = evaluation_runtime(model, task, device, runtime, backend)
    levers = levers or Levers()
    forward = with_tta(network, levers.tta) if task.name == "segmentation" else network
    ev = task.evaluator()
    total, n = 0.0, 0

    def outputs() -> Any:
        nonlocal total, n
        for batch in loader:
            x = batch["image"].to(device, non_blocking=True).float()
            logits = forward(x)
            b = x.shape[0]
            if loss_fn is not None:
                plain = network(x) if levers.tta else logits
                target = task.target(batch).to(device)
                total += float(loss_fn.to(device)(plain, target)) * b
            n += b
            yield logits.cpu(), batch

    records = getattr(loader.dataset, "records", [])
    for logits, batch in postprocessed(
        outputs(), records, task.threshold, levers.min_component_voxels, levers.keep_largest
    ):
        ev.update(logits, batch)
    model.train(was_training)
    set_layout(model, False)
    metrics = ev.compute()
    return {
        **({"loss": total / n if n else None} if loss_fn is not None else {}),
        **metrics,
        "n": n,
    }


def evaluation_runtime(
    model: nn.Module,
    task: Task,
    device: torch.device,
    runtime: dict[str, str] | None,
    backend: str | None = None,
) -> Any:
    """The network as evaluation runs it (fp32 variants only: metrics reproduce)."""
    from braintumor.inference.backends import Runtime

    return Runtime(
        model,
        task.name,
        device,
        runtime or {"precision": "32-true", "memory_format": "contiguous"},
        backend=backend,
        threshold=float(getattr(task, "threshold", 0.5)),
        memory_format="contiguous",
        label="evaluation",
        bf16=False,
    )


def saved_split(run: Path, records: list[Record], split: str) -> list[Record]:
    """The records of one split saved in ``RUN/splits.json``."""

    path = run / SPLITS_FILE
    if not path.is_file():
        raise DataError(f"{run} is not a run folder: {SPLITS_FILE} is missing")
    return load_splits(path, records).get(split, [])


def _eval_name(split: str, data_spec: str | None) -> str:
    if data_spec is None:
        return split
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", data_spec.partition(":")[0]) or "data"
    return name if split == "test" else f"{name}_{split}"


class _Rescale:
    """Dataset transform: an item's image from one intensity scale to another."""

    def __init__(self, src: str, dst: str) -> None:
        self.src, self.dst = src, dst

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:

        image = rescale_intensity(item["image"].numpy(), self.src, self.dst)
        return {**item, "image": torch.from_numpy(np.ascontiguousarray(image))}


def evaluate_run(
    run_dir: str | Path,
    data_spec: str | None = None,
    split: str = "test",
    options: dict[str, Any] | None = None,
    *,
    batch_size: int | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Evaluate a saved run; writes ``RUN/eval_<split>.json``.

    On another data set the file is ``eval_<format>.json`` (``eval_<format>_train.json``
    for the training part of a set with an official split).

    Args:
        run_dir: the run folder.
        data_spec: ``FORMAT[:PATH]`` of another data set; None evaluates on the run's
            own data and saved split.
        split: ``train``, ``val`` or ``test``. With a new data set: ``test`` uses its
            official test split when it has one, otherwise all of its samples.
        options: format options for ``data_spec``.
        batch_size: override the run's batch size.
        device: ``cpu``/``cuda``; default CUDA when available.

    Returns:
        The metrics (also written to the JSON file).
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of: {', '.join(SPLITS)}")
    run = load_run(run_dir)
    card, cfg = run.card, run.cfg
    task = create_task(
        card["task"],
        card["classes"] if card["task"] == "classification" else card["mask_channels"],
        card.get("threshold", 0.5),
    )
    note = None
    if data_spec is None:
        fmt = open_format(card["data"]["spec"], card["data"].get("options"))
        records = saved_split(run.path, fmt.records(), split)
        used, split_used = f"{split} split of {card['data']['spec']}", split
    else:
        fmt = open_format(data_spec, options)
        records = fmt.records()
        if any(r.split == "test" for r in records):  # an official split: respect it
            if split == "val":
                raise ConfigError(f"{data_spec} has no validation split; use --split test")
            records = [r for r in records if (r.split == "test") == (split == "test")]
            used, split_used = f"official {split} split of {data_spec}", split
        elif split != "test":
            raise ConfigError(
                f"{data_spec} has no official splits: it is evaluated as a whole; use --split test"
            )
        else:
            used, split_used = f"all samples of {data_spec}", "all"
            if data_spec == card["data"]["spec"] and (options or {}) == card["data"]["options"]:
                note = "this is the training data set: the samples include training data"
        names = output_names(card["task"], fmt)
        if names != task.output_names:
            raise DataError(
                f"{data_spec} has {card['task']} outputs {names} but the run was trained on "
                f"{task.output_names}; evaluate on data with the same classes/mask channels"
            )
    if not records:
        raise DataError(f"no samples to evaluate ({used})")

    pre = card["preprocessing"]
    transform = None
    if data_spec is not None:
        src, dst = intensity_scale(data_spec), card_intensity(card)
        if src != dst:  # e.g. a phantom-trained model on z-scored BraTS volumes
            transform = _Rescale(src, dst)
            note = f"intensities converted from {src} to {dst} (the run's scale), per slice"
    ds = SliceDataset(
        fmt,
        records,
        image_size=int(pre["image_size"]),
        channels=int(pre["channels"]),
        crop=bool(pre["crop"]),
        cache_dir=cfg.data.cache_dir,
        cache=cfg.data.cache,
        transform=transform,
        neighbours=int(pre.get("neighbours", 0)),
    )
    data_cfg = cfg.data
    if batch_size:
        data_cfg.batch_size = batch_size
    loader = make_loader(ds, data_cfg, shuffle=False)
    loss_fn = task.build_loss(cfg.loss, None, 0.0)
    metrics = evaluate_model(
        run.model,
        task,
        loader,
        loss_fn,
        device=pick_device(device or cfg.trainer.accelerator),
        runtime=card.get("runtime"),
        levers=Levers.from_card(card) if card.get("task") == "segmentation" else None,
    )
    metrics.update(
        split=split_used,
        data=data_spec or card["data"]["spec"],
        model=card["name"],
        params=card.get("params"),
        **({"note": note} if note else {}),
    )
    out = run.path / f"eval_{_eval_name(split, data_spec)}.json"
    write_json(out, metrics)
    return jsonable({**metrics, "written": str(out)})
