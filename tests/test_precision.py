"""Fast paths (channels-last, bf16 autocast) give eager fp32's outputs within tolerance."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import braintumor.precision as precision
from braintumor.config import Config
from braintumor.errors import ConfigError
from braintumor.inference.predictor import Predictor
from braintumor.inference.runs import make_card, runtime_settings
from braintumor.models.registry import create_model, list_models, model_entry
from braintumor.precision import (
    as_layout,
    resolve_precision,
    set_layout,
    use_channels_last,
)

# bf16 keeps 8 bits of mantissa: logits agree to a few percent of their range.
BF16_RTOL = 0.05
CL_ATOL = 1e-4  # channels-last only reorders the same fp32 arithmetic


def _net(name: str) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    seg = model_entry(name).task == "segmentation"
    model = create_model(name, in_channels=1, num_classes=1 if seg else 3).eval()
    size = 64 if name in HEAVY else 32
    return model, torch.randn(2, 1, size, size)


def _logits(out: object) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out  # type: ignore[index,return-value]


HEAVY = {"alexnet", "vgg16", "vgg16_ft", "resnet50"}  # seconds each on 2 busy cores


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in list_models()],
)
def test_fast_paths_match_eager_fp32(name: str) -> None:
    model, x = _net(name)
    with torch.inference_mode():
        ref = _logits(model(x)).float()
        scale = float(ref.abs().max()) + 1e-6
        set_layout(model, True)
        cl = _logits(model(as_layout(x, True))).float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf = _logits(model(as_layout(x, True))).float()
        set_layout(model, False)
    assert (cl - ref).abs().max() <= CL_ATOL * max(1.0, scale)
    assert (bf - ref).abs().max() <= BF16_RTOL * scale


def test_bf16_falls_back_with_one_line_where_the_cpu_lacks_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert resolve_precision("bf16-mixed", "cpu") == "32-true"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bfloat16" in err[0] and "32-true" in err[0]
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    assert resolve_precision("32-true", "cpu") == "32-true"
    with pytest.raises(ConfigError, match="precision"):
        resolve_precision("fp8", "cpu")


def test_auto_precision_is_bf16_only_on_a_cpu_with_native_bf16(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16-mixed"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "32-true"
    assert capsys.readouterr().err == ""  # the default falls back silently


def test_auto_layout_picks_channels_last_for_conv_nets_only() -> None:
    assert use_channels_last(create_model("unet", 1, 1), "auto")
    assert not use_channels_last(create_model("vit", 1, 3), "auto")
    assert not use_channels_last(create_model("unet", 1, 1), "contiguous")
    with pytest.raises(ConfigError, match="memory_format"):
        use_channels_last(create_model("unet", 1, 1), "nhwc")


def test_auto_layout_keeps_group_norm_nets_contiguous_under_bf16_only() -> None:
    segresnet = create_model("segresnet", 1, 1)  # GroupNorm: slow channels-last in bf16
    assert use_channels_last(segresnet, "auto", "32-true")
    assert not use_channels_last(segresnet, "auto", "bf16-mixed")
    assert use_channels_last(segresnet, "channels_last", "bf16-mixed")  # explicit wins
    assert use_channels_last(create_model("unet", 1, 1), "auto", "bf16-mixed")


def _card(prec: str) -> dict:
    cfg = Config(task="segmentation")
    cfg.model.name, cfg.model.kwargs, cfg.data.image_size = "unet", {"n_filters": 4}, 32
    cfg.trainer.precision, cfg.trainer.accelerator = prec, "cpu"
    return make_card(
        cfg, in_channels=1, num_classes=1, classes=[], mask_channels=["tumor"], crop=False
    )


def test_training_precision_survives_into_the_card_and_prediction(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    card = _card("bf16-mixed")
    assert card["runtime"] == {"precision": "bf16-mixed", "memory_format": "auto"}
    torch.manual_seed(0)
    model = create_model("unet", 1, 1, n_filters=4)
    fast = Predictor(model, card, device="cpu")
    assert fast.precision == "bf16-mixed" and fast.channels_last
    image = torch.rand(1, 40, 40).numpy()
    probs_fast = fast.predict_images([image])[0]
    exact = Predictor(model, card, device="cpu", precision="32-true")
    probs = exact.predict_images([image])[0]
    assert abs(probs_fast - probs).max() < 0.05
    agree = (fast.masks(probs_fast) == exact.masks(probs)).mean()
    assert agree >= 0.99
    # A CPU without bf16 records what training actually ran in.
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    cfg = Config()
    cfg.trainer.precision, cfg.trainer.accelerator = "bf16-mixed", "cpu"
    assert runtime_settings(cfg)["precision"] == "32-true"


def test_the_default_precision_is_auto_and_the_card_records_what_it_resolved_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Config().trainer.precision == "auto"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert _card("auto")["runtime"]["precision"] == "bf16-mixed"
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert _card("auto")["runtime"]["precision"] == "32-true"
