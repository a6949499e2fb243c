"""Engine pieces that need no training: run folders, inversion of the geometry, helpers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from braintumor.config import Config, save_config
from braintumor.data.base import Record
from braintumor.engine.crossval import summarize_folds
from braintumor.engine.data import class_weights, resolve_crop, subsample
from braintumor.engine.inference import Predictor, padding_box
from braintumor.engine.schedule import cosine_with_warmup
from braintumor.engine.runs import load_run, make_card, prepare_run_dir, save_run_model
from braintumor.errors import ConfigError, DataError
from braintumor.models.registry import create_model


def _card(task: str, name: str, in_ch: int, n_out: int, size: int, **kw: object) -> dict:
    cfg = Config(task=task)
    cfg.model.name, cfg.model.kwargs, cfg.data.image_size = name, dict(kw), size
    names = [f"c{i}" for i in range(n_out)]
    return make_card(
        cfg,
        in_channels=in_ch,
        num_classes=n_out,
        classes=names if task == "classification" else [],
        mask_channels=names if task == "segmentation" else [],
        crop=task == "classification",
    )


def _write_run(tmp_path: Path, model: nn.Module, card: dict) -> Path:
    save_run_model(tmp_path, model, card)
    cfg = Config(task=card["task"])
    cfg.model.name = card["name"]
    save_config(cfg, tmp_path / "config.yaml")
    return tmp_path


@pytest.mark.parametrize(
    ("task", "name", "kw"),
    [("classification", "simple_cnn", {}), ("segmentation", "unet", {"n_filters": 4, "depth": 2})],
)
def test_run_round_trip_gives_identical_outputs(
    tmp_path: Path, task: str, name: str, kw: dict
) -> None:
    torch.manual_seed(0)
    model = create_model(name, in_channels=2, num_classes=3, **kw).eval()
    run = _write_run(tmp_path, model, _card(task, name, 2, 3, 32, **kw))
    loaded = load_run(run)
    x = torch.rand(2, 2, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))
    assert not loaded.model.training
    # The saved tensors are copies: changing the live model later changes nothing on disk.
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert not torch.equal(model(x), load_run(run).model(x))


def test_load_run_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_run(tmp_path / "nope")
    (tmp_path / "model.json").write_text("{}")
    with pytest.raises(DataError, match="model.safetensors is missing"):
        load_run(tmp_path)


def test_existing_run_is_not_overwritten_without_force(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="--force"):
        prepare_run_dir(tmp_path, force=False)
    assert (tmp_path / "model.safetensors").read_bytes() == b"weights"
    prepare_run_dir(tmp_path, force=True)
    assert not (tmp_path / "model.safetensors").exists()
    assert (tmp_path / "notes.txt").read_text() == "mine"  # not ours: kept


class _Sharpen(nn.Module):
    """Segmenter whose probability is ~ the first input channel thresholded at 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 200.0 * (x[:, :1] - 0.5)


@pytest.mark.parametrize("size", [30, 64, 16])
def test_segmentation_probs_map_back_onto_the_input(size: int) -> None:
    h, w = 20, 30
    image = np.zeros((1, h, w), np.float32)
    image[0, 4:14, 6:22] = 1.0  # a 10 x 16 block, off-centre
    pred = Predictor(_Sharpen(), _card("segmentation", "x", 1, 1, size), device="cpu")
    probs = pred.predict_images([image])[0]
    assert probs.shape == (1, h, w)
    mask = pred.masks(probs)[0]
    if size == 30:  # no resizing: the inversion must be exact
        assert np.array_equal(mask, image[0].astype(np.uint8))
    else:  # resampling blurs only the block's border
        assert (mask != image[0]).mean() < 0.08
        assert mask[6:12, 8:20].all() and not mask[16:, :].any()


def test_padding_box_matches_pad_to_square() -> None:
    assert padding_box(20, 30) == (5, 0, 20, 30)
    assert padding_box(31, 10) == (0, 10, 31, 10)


class _Recorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return 200.0 * (x[:, :1] - 0.5)


def test_predict_volume_slices_like_the_volume_formats() -> None:
    rng = np.random.default_rng(0)
    vol = (rng.random((12, 8, 5)) > 0.5).astype(np.float32)  # X x Y x Z, not square
    rec = _Recorder()
    pred = Predictor(rec, _card("segmentation", "x", 1, 1, 12), device="cpu")
    probs = pred.predict_volume(vol, batch_size=2)
    assert probs.shape == (1, 12, 8, 5)
    assert np.array_equal(pred.masks(probs)[0], vol.astype(np.uint8))
    # Slice z=0 as the model saw it: H x W = Y x X (BraTS: volume[:, :, z].T), padded
    # top and bottom from 8 to 12 rows.
    first = torch.cat(rec.seen)[0, 0].numpy()
    assert np.array_equal(first[2:10, :], vol[:, :, 0].T)


def test_classification_predictor_returns_probabilities() -> None:
    torch.manual_seed(0)
    model = create_model("simple_cnn", in_channels=1, num_classes=3)
    pred = Predictor(model, _card("classification", "simple_cnn", 1, 3, 32), device="cpu")
    images = [np.random.default_rng(i).random((3, 40 + i, 50)).astype(np.float32) for i in range(3)]
    probs = pred.predict_images(images, batch_size=2)
    assert probs.shape == (3, 3)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


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


def test_model_card_records_the_intensity_normalisation() -> None:
    from braintumor.config import load_config
    from braintumor.engine.runs import card_intensity, make_card

    def card(spec: str) -> dict:
        cfg = load_config(None, [f"data.spec={spec}"])
        return make_card(
            cfg, in_channels=4, num_classes=1, classes=[], mask_channels=["tumor"], crop=False
        )

    assert card("synthetic")["normalisation"]["intensity"] == "unit"
    assert card("brats:/data/brats")["normalisation"]["intensity"] == "zscore"
    old = card("brats-h5:/data/h5")
    del old["normalisation"]  # cards written before the field: inferred from the data spec
    assert card_intensity(old) == "zscore"


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
