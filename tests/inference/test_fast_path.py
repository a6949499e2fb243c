"""The default CPU fast path (``auto``): the fastest variant that matches eager fp32
within the stated tolerance, for every registered model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import braintumor.inference.backends as backends
import braintumor.precision as precision
from braintumor.inference.backends import Runtime, Variant, agreement, forget_decisions
from braintumor.inference.predictor import Predictor
from braintumor.models.registry import create_model, list_models, model_entry
from tests.inference._cards import card_for, write_test_run

HEAVY = {"alexnet", "vgg16", "vgg16_ft", "resnet50"}  # seconds to export on 2 busy cores
_EAGER = {"eager fp32", "eager fp32 channels-last", "eager bf16", "eager bf16 channels-last"}
NAMES = _EAGER | {f"{n} folded" for n in _EAGER}


@pytest.fixture(autouse=True)
def _auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRAINTUMOR_BACKEND", raising=False)  # the real default
    forget_decisions()


def _setup(name: str) -> tuple[torch.nn.Module, dict, list[np.ndarray]]:
    torch.manual_seed(0)
    task = model_entry(name).task
    n_out = 2 if task == "segmentation" else 3
    size = 64 if name in HEAVY else 32
    card = card_for(task, name, 1, n_out, size)
    model = create_model(name, in_channels=1, num_classes=n_out)
    # Smooth images (a scan is not white noise), at another size than the card's.
    low = torch.rand(6, 1, 5, 6, generator=torch.Generator().manual_seed(1))
    up = torch.nn.functional.interpolate(low, size=(40, 48), mode="bicubic").clamp(0, 1)
    return model, card, list(up.numpy())


def _agrees(ref: Predictor, want: object, got: object) -> None:
    if ref.is_classification:
        assert np.array_equal(np.argmax(want, axis=1), np.argmax(got, axis=1))
        assert np.abs(np.asarray(want) - np.asarray(got)).max() <= backends.CLS_PROB_ATOL
        return
    for a, b in zip(want, got, strict=True):  # type: ignore[call-overload]
        assert (ref.masks(a) == ref.masks(b)).mean() >= backends.SEG_MASK_AGREEMENT
        assert np.abs(a - b).max() <= backends.SEG_PROB_ATOL


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in list_models()],
)
def test_auto_matches_eager_fp32_within_tolerance(name: str) -> None:
    model, card, images = _setup(name)
    want = Predictor(model, card, device="cpu", precision="32-true").predict_images(images)
    auto = Predictor(model, card, device="cpu")
    assert auto.backend == "auto" and auto.runtime.startswith("auto")  # calibrates lazily
    got = auto.predict_images(images)
    assert auto.runtime in NAMES | {"onnxruntime fp32"}
    assert auto.backend == auto.runtime.split()[0]
    _agrees(auto, want, got)


class _Flip(torch.nn.Module):
    """A segmenter whose bf16 run flips every mask (as a broken fast path would)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x) * 0 + (x - 0.5) * 20
        return -y if torch.is_autocast_enabled("cpu") else y


def test_the_guard_refuses_a_variant_that_disagrees(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    monkeypatch.setattr(backends, "ORT_WORTH_TRYING", 0.0)  # eager variants only
    rt = Runtime(_Flip(), "segmentation", torch.device("cpu"), memory_format="contiguous")
    x = torch.rand(4, 1, 16, 16)
    assert rt.calibrate(x).precision == "32-true"  # bf16 (however fast) is refused
    assert rt.note is not None and "eager bf16" in rt.note and "mask agreement" in rt.note
    assert torch.allclose(rt(x), (x - 0.5) * 20)
    # The tolerance itself: masks, probabilities, classes.
    ref = torch.full((1, 1, 10, 100), 5.0)
    near = ref.clone()
    near[0, 0, 0, 0] = -5.0  # one pixel in 1000 flips: still >= 0.999
    assert agreement("segmentation", 0.5, ref, near) is not None  # but |dprob| ~ 0.99
    assert agreement("segmentation", 0.5, ref, ref + 0.01) is None
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    assert agreement("classification", 0.5, logits, logits.flip(1)) == "a predicted class differs"
    assert agreement("classification", 0.5, logits, logits * 1.2) is not None  # |dprob| > 0.02


def test_without_native_bf16_auto_says_nothing_but_a_bf16_run_says_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(backends, "ORT_WORTH_TRYING", 0.0)
    model, card, images = _setup("unet")
    auto = Predictor(model, card, device="cpu")
    auto.predict_images(images[:2])
    assert "bf16" not in auto.runtime and capsys.readouterr().err == ""
    card["runtime"]["precision"] = "bf16-mixed"  # trained in bf16 elsewhere
    pinned = Predictor(model, card, device="cpu")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bfloat16" in err[0] and "32-true" in err[0]
    assert pinned.runtime == "eager fp32 channels-last"  # pinned: no timing


def test_a_bf16_run_predicts_as_trained_and_eager_stays_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    model, card, _ = _setup("unet")
    card["runtime"]["precision"] = "bf16-mixed"
    assert Predictor(model, card, device="cpu").runtime == "eager bf16 channels-last"
    card["runtime"]["precision"] = "32-true"
    assert Predictor(model, card, device="cpu", backend="eager").runtime == (
        "eager fp32 channels-last"
    )
    monkeypatch.setenv("BRAINTUMOR_BACKEND", "eager")
    assert Predictor(model, card, device="cpu").backend == "eager"


def test_from_run_remembers_the_decision_and_serve_uses_auto(tmp_path: object) -> None:
    from braintumor.serve.app import load_served_model

    model, card, images = _setup("unet")
    run = write_test_run(tmp_path, model, card)  # type: ignore[arg-type]
    first = Predictor.from_run(run, device="cpu")
    first.predict_images(images[:2])
    assert len(backends._DECISIONS) == 1
    chosen = first.runtime
    again = Predictor.from_run(run, device="cpu")
    again.calibrate(np.zeros((2, 1, 32, 32), np.float32))
    assert again.runtime == chosen and len(backends._DECISIONS) == 1
    served = load_served_model(run)
    assert served.predict.__self__.backend in ("auto", "eager", "onnxruntime")  # type: ignore[attr-defined]


def test_evaluate_runs_fp32_variants_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    model, card, _ = _setup("unet")
    rt = Runtime(model, "segmentation", torch.device("cpu"), card["runtime"], bf16=False)
    rt.calibrate(torch.rand(2, 1, 32, 32))
    assert rt.variant.precision == "32-true"
    assert isinstance(rt.variant, Variant)
