"""The ONNX Runtime backend gives eager fp32's masks and classes, or falls back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from braintumor.errors import ConfigError
from braintumor.inference.predictor import Predictor
from braintumor.models.registry import create_model, list_models, model_entry
from tests.inference._cards import card_for

pytest.importorskip("onnxruntime")

HEAVY = {"alexnet", "vgg16", "vgg16_ft", "resnet50"}  # seconds to export on 2 busy cores


def _predictors(name: str) -> tuple[Predictor, Predictor, list[np.ndarray]]:
    torch.manual_seed(0)
    task = model_entry(name).task
    n_out = 2 if task == "segmentation" else 3
    size = 64 if name in HEAVY else 32
    card = card_for(task, name, 1, n_out, size)
    card["runtime"] = {"precision": "32-true", "memory_format": "contiguous"}
    model = create_model(name, in_channels=1, num_classes=n_out)
    rng = np.random.default_rng(0)
    images = [rng.random((1, 40, 48)).astype(np.float32) for _ in range(6)]
    eager = Predictor(model, card, device="cpu", backend="eager")
    ort = Predictor(model, card, device="cpu", backend="onnxruntime")
    return eager, ort, images


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in list_models()],
)
def test_onnxruntime_matches_eager_fp32(name: str) -> None:
    eager, ort, images = _predictors(name)
    assert ort.backend == "onnxruntime"
    want, got = eager.predict_images(images), ort.predict_images(images)
    if eager.is_classification:
        assert np.array_equal(np.argmax(want, axis=1), np.argmax(got, axis=1))
    else:
        agree = np.mean(
            [(eager.masks(a) == ort.masks(b)).mean() for a, b in zip(want, got, strict=True)]
        )
        assert agree >= 0.999


class _NotExportable(nn.Module):
    """A segmenter whose export fails (as one with an op ONNX lacks would)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():
            raise RuntimeError("unsupported operator aten::made_up")
        return x[:, :1] * 2.0


def test_a_model_that_does_not_export_runs_eager_after_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    card = card_for("segmentation", "odd", 1, 1, 16)
    pred = Predictor(_NotExportable(), card, device="cpu", backend="onnxruntime")
    assert pred.backend == "eager"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ONNX Runtime" in err[0] and "eager" in err[0]
    assert pred.predict_images([np.ones((1, 16, 16), np.float32)])[0].shape == (1, 16, 16)


def test_auto_keeps_one_of_the_variants_and_unknown_names_fail() -> None:
    card = card_for("segmentation", "unet", 1, 1, 16)
    model = create_model("unet", in_channels=1, num_classes=1)
    auto = Predictor(model, card, device="cpu", backend="auto")
    assert auto.backend == "auto"  # until the first batch calibrates
    auto.predict_images([np.ones((1, 16, 16), np.float32)])
    assert auto.backend in ("eager", "onnxruntime")
    assert Predictor(model, card, device="cpu").backend == "eager"  # tests: BRAINTUMOR_BACKEND
    with pytest.raises(ConfigError, match="backend"):
        Predictor(model, card, device="cpu", backend="tensorrt")
