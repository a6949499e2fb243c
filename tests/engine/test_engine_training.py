"""Training through the engine API on tiny synthetic phantoms (CPU, seconds)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from braintumor.config import Config, load_config
from braintumor.engine.evaluate import evaluate_run
from braintumor.engine.evaluators import ClassificationEvaluator, Evaluator
from braintumor.engine.train import train
from braintumor.errors import ConfigError
from braintumor.inference.predictor import Predictor
from braintumor.inference.runs import load_run

SCRIPT = [0.2, 0.9, 0.1]  # val balanced accuracy per epoch: best is epoch 1, not the last


def tiny_config(tmp: Path, task: str = "classification", **sets: Any) -> Config:
    model = "simple_cnn" if task == "classification" else "unet"
    overrides = [
        f"task={task}",
        f"model.name={model}",
        "data.options={n_patients: 8, slices_per_patient: 3, size: 32, modalities: 1}",
        "data.image_size=32",
        "data.batch_size=8",
        f"data.cache_dir={tmp / 'cache'}",
        "trainer.epochs=1",
        "trainer.progress=false",
        "trainer.accelerator=cpu",
    ]
    if task == "segmentation":
        overrides += ["model.kwargs.n_filters=4", "model.kwargs.depth=2"]
    overrides += [f"{k}={v}" for k, v in sets.items()]
    return load_config(None, overrides)


def saved_keys(run: Path) -> dict[str, list[str]]:
    """Sample keys per split, as saved in RUN/splits.json."""
    from braintumor.data import create_format
    from braintumor.data.splits import load_splits

    data = json.loads((run / "model.json").read_text())["data"]
    records = create_format(data["spec"], **data["options"]).records()
    return {k: [r.key for r in v] for k, v in load_splits(run / "splits.json", records).items()}


class _Scripted(Evaluator):
    """Real validation metrics, except the monitor, which follows SCRIPT."""

    def __init__(self, inner: ClassificationEvaluator, values: list[float]) -> None:
        self.inner, self.values = inner, values

    def update(self, logits: torch.Tensor, batch: dict[str, Any]) -> None:
        self.inner.update(logits, batch)

    def reset(self) -> None:
        self.inner.reset()

    def compute(self) -> dict[str, Any]:
        return {**self.inner.compute(), "balanced_accuracy": self.values.pop(0)}


class ScriptAndRecord(L.Callback):
    """Scripts the val monitor and keeps a copy of the weights at every validation."""

    def __init__(self) -> None:
        self.weights: list[dict[str, torch.Tensor]] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._orig = pl_module.val_eval
        pl_module.val_eval = _Scripted(pl_module.val_eval, list(SCRIPT))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.weights.append(
            {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}
        )

    def on_fit_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        pl_module.val_eval = self._orig


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ScriptAndRecord]:
    tmp = tmp_path_factory.mktemp("scripted")
    cfg = tiny_config(tmp, **{"trainer.epochs": 3, "optim.scheduler": "none", "optim.lr": 0.01})
    rec = ScriptAndRecord()
    run = train(cfg, tmp / "run", callbacks=[rec])
    return run, rec


def test_saved_weights_are_the_best_epoch_not_the_last(scripted_run: tuple) -> None:
    run, rec = scripted_run
    assert len(rec.weights) == 3
    saved = load_file(str(run / "model.safetensors"))
    best, last = rec.weights[1], rec.weights[2]
    assert all(torch.equal(saved[k], best[k]) for k in best)
    assert any(not torch.equal(saved[k], last[k]) for k in last if last[k].is_floating_point())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["best_epoch"] == 1 and metrics["best_val"] == pytest.approx(0.9)
    assert metrics["selected"] == "best" and metrics["split"] == "test"
    history = (run / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,lr,train_loss,val_loss") and len(history) == 4
    assert not (run / "logs" / "checkpoints").exists()  # the pickle is not kept


def test_evaluate_uses_exactly_the_requested_split(
    scripted_run: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    import braintumor.engine.evaluate as evaluate_mod

    run, _ = scripted_run
    seen: list[list[str]] = []
    real = evaluate_mod.SliceDataset

    class Spy(real):  # type: ignore[misc, valid-type]
        def __init__(self, fmt: Any, records: list, *args: Any, **kwargs: Any) -> None:
            seen.append([r.key for r in records])
            super().__init__(fmt, records, *args, **kwargs)

    monkeypatch.setattr(evaluate_mod, "SliceDataset", Spy)
    keys = saved_keys(run)
    for split in ("val", "test", "train"):
        seen.clear()
        metrics = evaluate_run(run, split=split)
        assert seen == [keys[split]], split
        assert metrics["n"] == len(keys[split]) and metrics["split"] == split
        assert (run / f"eval_{split}.json").is_file()
    with pytest.raises(ConfigError, match="unknown split"):
        evaluate_run(run, split="holdout")


def test_saved_run_reproduces_the_training_time_test_metrics(scripted_run: tuple) -> None:
    run, _ = scripted_run
    at_train = json.loads((run / "metrics.json").read_text())
    again = evaluate_run(run, split="test")
    for key in ("accuracy", "balanced_accuracy", "f1_macro", "confusion_matrix", "n"):
        assert again[key] == at_train[key], key
    assert again["loss"] == pytest.approx(at_train["loss"], rel=1e-5)
    # The Predictor, given the raw images, prepares them exactly as the run's datasets.
    from braintumor.data import create_format
    from braintumor.data.dataset import SliceDataset

    loaded = load_run(run)
    card = loaded.card
    fmt = create_format(card["data"]["spec"], **card["data"]["options"])
    by_key = {r.key: r for r in fmt.records()}
    records = [by_key[k] for k in saved_keys(run)["test"]]
    ds = SliceDataset(
        fmt,
        records,
        32,
        card["preprocessing"]["channels"],
        card["preprocessing"]["crop"],
        cache=False,
    )
    with torch.no_grad():
        x = torch.stack([ds[i]["image"] for i in range(len(ds))])
        expected = torch.softmax(loaded.model(x), 1).numpy()
    images = [fmt.load(r)["image"] for r in records]
    exact = Predictor.from_run(run, device="cpu", precision="32-true")  # as `expected`
    assert np.allclose(exact.predict_images(images), expected, atol=1e-6)
    # As trained (the card's precision, bf16 where the CPU has it): training's test accuracy.
    got = Predictor.from_run(run, device="cpu").predict_images(images)
    acc = float((got.argmax(1) == np.array([r.label for r in records])).mean())
    assert acc == pytest.approx(at_train["accuracy"])


def test_cross_validation_writes_fold_runs_and_summary(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, folds=2)
    out = train(cfg, tmp_path / "cv")
    cv = json.loads((out / "cv_metrics.json").read_text())
    assert cv["folds"] == 2 and cv["fold_dirs"] == ["fold_0", "fold_1"]
    folds = [json.loads((out / f"fold_{i}" / "metrics.json").read_text()) for i in range(2)]
    for i in range(2):
        assert (out / f"fold_{i}" / "model.safetensors").is_file()
    acc = cv["metrics"]["accuracy"]
    assert acc["values"] == [f["accuracy"] for f in folds]
    assert acc["mean"] == pytest.approx(np.mean(acc["values"]))
    assert acc["std"] == pytest.approx(np.std(acc["values"], ddof=1), abs=1e-12)
    # Each fold tests on different patients.
    tests = [set(saved_keys(out / f"fold_{i}")["test"]) for i in range(2)]
    assert tests[0].isdisjoint(tests[1])


def test_model_task_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    cfg.model.name = "unet"
    with pytest.raises(ConfigError, match="segmentation model"):
        train(cfg, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_unknown_monitor_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, task="segmentation", **{"trainer.monitor": "accuracy"})
    with pytest.raises(ConfigError, match="dice_per_patient_mean"):
        train(cfg, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_chosen_monitor_selects_the_checkpoint(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, task="segmentation", **{"trainer.monitor": "dice_per_patient_mean"})
    run = train(cfg, tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["monitor"] == "val_dice_per_patient_mean"
    assert metrics["best_val"] is not None and 0.0 <= metrics["best_val"] <= 1.0
    assert set(metrics["per_patient"]) == set(saved_keys_patients(run))


def saved_keys_patients(run: Path) -> set[str]:
    """The patient ids of the saved test split."""
    splits = json.loads((run / "splits.json").read_text())
    return set(splits["splits"]["test"]["patients"])


def test_loss_monitor_keeps_the_real_validation_loss(tmp_path: Path) -> None:
    # The monitor placeholder (NaN for an undefined metric) must not overwrite val_loss.
    cfg = tiny_config(tmp_path, **{"trainer.monitor": "loss", "trainer.epochs": 2})
    run = train(cfg, tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["monitor"] == "val_loss"
    assert metrics["best_val"] is not None and math.isfinite(metrics["best_val"])


def test_deep_supervision_model_trains_saves_and_predicts(tmp_path: Path) -> None:
    cfg = tiny_config(
        tmp_path,
        task="segmentation",
        **{
            "model.name": "segresnet",
            "model.kwargs": "{n_filters: 8, deep_supervision: true}",
            "trainer.epochs": 2,
        },
    )
    run = train(cfg, tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    assert math.isfinite(metrics["loss"]) and 0.0 <= metrics["dice"] <= 1.0
    assert any(".aux_heads." in k for k in load_file(run / "model.safetensors"))
    again = evaluate_run(run, split="test")
    assert again["dice"] == pytest.approx(metrics["dice"], abs=1e-6)
    from braintumor.data import create_format

    card = load_run(run).card
    fmt = create_format(card["data"]["spec"], **card["data"]["options"])
    image = fmt.load(fmt.records()[0])["image"]
    (probs,) = Predictor.from_run(run, device="cpu").predict_images([image])
    assert probs.shape[-2:] == image.shape[-2:] and np.isfinite(probs).all()


def test_mixup_and_cutmix_train_on_soft_targets_and_validate_unmixed(tmp_path: Path) -> None:
    seen: list[torch.Tensor] = []

    class Spy(L.Callback):  # records the targets the training steps were given
        def on_fit_start(self, trainer: L.Trainer, module: Any) -> None:
            inner = module.mixer
            assert inner is not None

            def record(images: torch.Tensor, labels: torch.Tensor) -> Any:
                mixed = inner(images, labels)
                seen.append(mixed[1])
                return mixed

            module.mixer = record

    cfg = tiny_config(tmp_path, **{"data.mixup_alpha": 0.4, "data.cutmix_alpha": 1.0})
    run = train(cfg, tmp_path / "run", callbacks=[Spy()])
    metrics = json.loads((run / "metrics.json").read_text())
    assert math.isfinite(metrics["loss"]) and 0.0 <= metrics["accuracy"] <= 1.0
    # Soft targets (rows of class probabilities), not all one-hot.
    assert seen and all(torch.allclose(t.sum(1), torch.ones(len(t))) for t in seen)
    assert any(bool(((t > 0) & (t < 1)).any()) for t in seen)
    # Test metrics come from unmixed images: evaluating the saved run reproduces them.
    assert evaluate_run(run, split="test")["accuracy"] == metrics["accuracy"]


def test_levers_on_val_record_the_gate_table_and_the_card(tmp_path: Path) -> None:
    from braintumor.engine.levers import GATE_AREAS

    cfg = tiny_config(tmp_path, task="segmentation", **{"trainer.levers": "val"})
    run = train(cfg, tmp_path / "run")
    levers = json.loads((run / "metrics.json").read_text())["levers"]
    assert len(levers["val_table"]) == 22 and "gate_area" in levers
    assert [r["gate_area"] for r in levers["gate_table"]] == [0.0, *GATE_AREAS]
    card = json.loads((run / "model.json").read_text())
    inference = card.get("inference") or {}
    assert inference.get("gate_area") == levers["gate_area"]  # None unless one was chosen


def test_levers_tta_tries_no_component_removal(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, task="segmentation", **{"trainer.levers": "tta"})
    run = train(cfg, tmp_path / "run")
    levers = json.loads((run / "metrics.json").read_text())["levers"]
    assert [(r["tta"], r["min_component_voxels"]) for r in levers["val_table"]] == [
        (False, 0),
        (True, 0),
    ]
    assert levers["min_component_voxels"] == 0 and not levers["keep_largest"]
