"""The variants a network can run in, and the tolerance a fast one must meet.

See :mod:`braintumor.inference.backends` for how ``auto`` times and chooses them.

Tolerance (eligibility): a variant runs only if, on the calibration batch, its
output agrees with eager fp32's:

- segmentation: the masks at the run's threshold agree on >= 0.999 of the pixels
  (:data:`SEG_MASK_AGREEMENT`) and no probability moves by more than 0.05
  (:data:`SEG_PROB_ATOL`);
- classification: the same predicted class for every image and no probability moves
  by more than 0.02 (:data:`CLS_PROB_ATOL`).

The check is made on the real images being predicted (a smooth random image when
:meth:`~braintumor.inference.backends.Runtime.calibrate` is called without any), so it
holds there exactly and elsewhere as far as that batch is typical. The reference is always
eligible, so auto never runs anything worse than eager fp32. ``evaluate`` (reported
metrics) uses only the fp32 variants, whose outputs equal eager fp32's to ~1e-6.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# Tolerance of a fast variant against eager fp32 on the calibration batch (see above).
SEG_MASK_AGREEMENT = 0.999
SEG_PROB_ATOL = 0.05
CLS_PROB_ATOL = 0.02
CALIBRATION_ITEMS = 8  # images of the first batch that calibration times and checks
# ONNX Runtime runs fp32 at <= ~1.7x eager fp32 (benchmarks/speed.py, BENCHMARKS.md): it
# won only where eager's best gained < 1.6x (improved_unet, attention_unet, alexnet).
ORT_WORTH_TRYING = 1.6

_PRECISION_NAMES = {"32-true": "fp32", "bf16-mixed": "bf16", "16-mixed": "fp16"}


@dataclass(frozen=True)
class Variant:
    """One way to run a network: engine, precision, memory layout."""

    engine: str  # "eager" | "onnxruntime"
    precision: str = "32-true"
    channels_last: bool = False
    folded: bool = False  # BatchNorm folded into the convolutions (inference.fold)

    @property
    def name(self) -> str:
        """``eager bf16 channels-last``, ``eager fp32 folded``, ``onnxruntime fp32``, ..."""
        text = f"{self.engine} {_PRECISION_NAMES.get(self.precision, self.precision)}"
        if self.engine == "eager":
            text += " channels-last" if self.channels_last else ""
            text += " folded" if self.folded else ""
        return text


def agreement(task: str, threshold: float, ref: torch.Tensor, out: torch.Tensor) -> str | None:
    """None when logits ``out`` agree with the reference logits ``ref`` within the
    tolerance (see the module docstring), else why not."""
    from braintumor.inference.predictor import probabilities

    if out.shape != ref.shape:
        return f"output shape {tuple(out.shape)} != {tuple(ref.shape)}"
    p, q = probabilities(task, ref), probabilities(task, out)
    if not bool(torch.isfinite(q).all()):
        return "non-finite output"
    moved = float((p - q).abs().max())
    if task == "classification":
        if not torch.equal(p.argmax(1), q.argmax(1)):
            return "a predicted class differs"
        return None if moved <= CLS_PROB_ATOL else f"max |dprob| {moved:.3g} > {CLS_PROB_ATOL}"
    agree = float(((p > threshold) == (q > threshold)).float().mean())
    if agree < SEG_MASK_AGREEMENT:
        return f"mask agreement {agree:.4f} < {SEG_MASK_AGREEMENT}"
    return None if moved <= SEG_PROB_ATOL else f"max |dprob| {moved:.3g} > {SEG_PROB_ATOL}"


def smooth_batch(n: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """Smooth random images in [0, 1] (8 x 8 noise, bicubic-upsampled): a calibration
    input closer to a scan than white noise, for when no real batch is at hand."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, channels, 8, 8, generator=g)
    up = nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    return up.clamp(0, 1)


def seconds(run: Callable[[], Any]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def seconds_per_batch(run: Callable[[], Any], repeats: int = 2) -> float:
    """Best of ``repeats`` timed calls after one warm-up call."""
    run()
    return min(seconds(run) for _ in range(repeats))


__all__ = [
    "CALIBRATION_ITEMS",
    "CLS_PROB_ATOL",
    "ORT_WORTH_TRYING",
    "SEG_MASK_AGREEMENT",
    "SEG_PROB_ATOL",
    "Variant",
    "agreement",
    "seconds",
    "seconds_per_batch",
    "smooth_batch",
]
