"""Engine pieces that need no training: run-folder guard, schedules, data helpers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from braintumor.data.base import Record
from braintumor.engine.crossval import summarize_folds
from braintumor.engine.data import class_weights, resolve_crop, subsample
from braintumor.engine.schedule import cosine_with_warmup
from braintumor.errors import ConfigError
from braintumor.inference.runs import prepare_run_dir
from braintumor.models.registry import create_model


def test_existing_run_is_not_overwritten_without_force(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="--force"):
        prepare_run_dir(tmp_path, force=False)
    assert (tmp_path / "model.safetensors").read_bytes() == b"weights"
    prepare_run_dir(tmp_path, force=True)
    assert not (tmp_path / "model.safetensors").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"  # not ours: kept


def test_cosine_schedule_warms_up_then_decays() -> None:
    f = cosine_with_warmup(epochs=6, warmup=2)
    factors = [f(e) for e in range(6)]
    assert factors[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert all(a > b for a, b in zip(factors[2:], factors[3:], strict=False))
    assert cosine_with_warmup(epochs=1, warmup=3)(0) == 1.0


def test_class_weights_and_stratified_subsample() -> None:
    recs = [Record(path=f"p{i}", patient_id=f"q{i}", label=int(i < 30)) for i in range(90)]
    assert class_weights(recs, 2) == pytest.approx([90 / (2 * 60), 90 / (2 * 30)])
    sub = subsample(recs, 9, seed=1)
    assert len(sub) == 9 and sum(r.label for r in sub) == 3
    assert subsample(recs, 9, seed=1) == sub and subsample(recs, None, 0) is recs


def test_crop_is_decided_by_the_task() -> None:
    assert resolve_crop("classification", None) is True
    assert resolve_crop("segmentation", None) is False
    with pytest.raises(ConfigError, match="crop"):
        resolve_crop("segmentation", True)


def test_fold_summary_mean_and_sample_std() -> None:
    s = summarize_folds([{"dice": 0.5, "n": 3, "x": "a"}, {"dice": 0.7, "n": 4, "x": "b"}])
    assert set(s) == {"dice"}
    assert s["dice"]["mean"] == pytest.approx(0.6)
    assert s["dice"]["std"] == pytest.approx(math.sqrt(0.02))
    assert json.dumps(s)


def test_freeze_trains_only_the_head() -> None:
    from braintumor.engine.module import can_freeze, set_frozen

    model = create_model("simple_cnn", in_channels=1, num_classes=2)
    head = {id(p) for p in model.head_parameters()}
    set_frozen(model, True)
    assert head and all(p.requires_grad == (id(p) in head) for p in model.parameters())
    set_frozen(model, False)
    assert all(p.requires_grad for p in model.parameters())
    assert not can_freeze(create_model("unet", n_filters=4, depth=2))


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("scheduler", ["cosine", "plateau", "none"])
def test_optimizers_and_schedules(optimizer: str, scheduler: str) -> None:
    from braintumor.config import OptimConfig
    from braintumor.engine.module import BrainTumorModule
    from braintumor.engine.tasks import create_task

    optim = OptimConfig(optimizer=optimizer, scheduler=scheduler, weight_decay=0.1)
    model = create_model("simple_cnn", in_channels=1, num_classes=2)
    module = BrainTumorModule(
        model, create_task("classification", ["a", "b"]), optim, epochs=5, class_weights=[0.5, 2.0]
    )
    conf = module.configure_optimizers()
    opt = conf["optimizer"] if isinstance(conf, dict) else conf
    assert type(opt).__name__.lower() == optimizer
    if optimizer != "sgd":  # Adam(W) on CPU tensors: the fused kernel
        assert opt.defaults["fused"] is True
    decays = {g["weight_decay"] for g in opt.param_groups}
    assert decays == {0.1, 0.0}  # no decay on biases and norm weights
    if scheduler == "plateau":
        assert conf["lr_scheduler"]["monitor"] == "val_balanced_accuracy"  # never test metrics
    assert torch.equal(module.loss_fn.ce.weight, torch.tensor([0.5, 2.0]))
    with pytest.raises(ConfigError, match="freeze"):
        BrainTumorModule(
            create_model("unet", n_filters=4, depth=2),
            create_task("segmentation", ["tumor"]),
            optim,
            5,
            freeze_epochs=1,
        )


@pytest.mark.parametrize(
    ("task", "monitor", "mode"),
    [
        ("segmentation", "dice_per_patient_mean", "max"),
        ("segmentation", "hd95", "min"),
        ("classification", "loss", "min"),
        ("classification", "f1_macro", "max"),
    ],
)
def test_monitor_choice_sets_the_direction(task: str, monitor: str, mode: str) -> None:
    from braintumor.engine.tasks import create_task

    t = create_task(task, ["a", "b"], monitor=monitor)
    assert (t.monitor, t.monitor_mode) == (monitor, mode)
    default = create_task(task, ["a", "b"])
    assert default.monitor != monitor or default.monitor_mode == mode
    with pytest.raises(ConfigError, match="unknown trainer.monitor 'nope'"):
        create_task(task, ["a", "b"], monitor="nope")
