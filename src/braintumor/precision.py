"""Numeric precision and memory layout: how fast a network runs on this machine.

Two settings, both in ``cfg.trainer`` and both written into the model card so that
prediction runs the network the way it was trained:

- ``precision``: Lightning's ``32-true`` / ``bf16-mixed`` / ``16-mixed``. On a CPU
  ``bf16-mixed`` is autocast to bfloat16, fast only where the CPU has native bf16
  (AVX512-BF16 / AMX); elsewhere it is emulated and slower, so a CPU without it
  falls back to ``32-true`` with one printed line instead of failing or crawling.
- ``memory_format``: ``channels_last`` (NHWC) lets oneDNN run convolutions without
  re-ordering every activation; ``contiguous`` is PyTorch's default NCHW. ``auto``
  picks channels-last for convolutional networks without instance norm, and under bf16
  without group norm either (measured in ``benchmarks/speed.py``: faster for the
  project's U-Nets and CNNs, slower for MONAI's instance-normalised BasicUNet, for
  segresnet's GroupNorm in bf16, and of no use for a ViT).
"""

from __future__ import annotations

import functools
import sys

import torch
from torch import nn

from braintumor.errors import ConfigError

PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "32", "bf16", "16")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")


@functools.cache
def cpu_has_bf16() -> bool:
    """True when oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def on_cpu(accelerator: str) -> bool:
    """Whether ``accelerator`` resolves to the CPU here."""
    return accelerator == "cpu" or not torch.cuda.is_available()


def resolve_precision(precision: str, accelerator: str = "auto", *, say: bool = True) -> str:
    """The precision to run: ``precision``, or ``32-true`` where the CPU lacks bf16.

    ``auto``: ``bf16-mixed`` on a CPU with native bf16 (it matched fp32's val metrics
    within seed noise at equal minutes on the shipped recipes, BENCHMARKS.md), else
    ``32-true`` (a CPU without bf16, and GPUs, where it was not measured), silently.

    Args:
        precision: the configured value (``trainer.precision`` or the card's).
        accelerator: ``cpu``/``gpu``/``auto``.
        say: print the one-line fallback note to stderr.
    """
    text = str(precision)
    if text not in PRECISIONS:
        raise ConfigError(
            f"unknown trainer.precision {text!r}; use one of: auto, 32-true, bf16-mixed, 16-mixed"
        )
    if text == "auto":
        return "bf16-mixed" if on_cpu(accelerator) and cpu_has_bf16() else "32-true"
    if text.startswith("bf16") and on_cpu(accelerator) and not cpu_has_bf16():
        if say:
            print(
                "note: this CPU has no native bfloat16 (AVX512-BF16/AMX); "
                f"running in 32-true instead of {text}",
                file=sys.stderr,
            )
        return "32-true"
    return text


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a (resolved) precision; None for full fp32."""
    if precision.startswith("bf16"):
        return torch.bfloat16
    if precision.startswith("16"):
        return torch.float16
    return None


def is_conv_net(model: nn.Module, low_precision: bool = False) -> bool:
    """Most parameters sit in 2D convolutions and nothing is instance-normalised (nor,
    under bf16/fp16 autocast, group-normalised: oneDNN's channels-last GroupNorm in
    bf16 trained segresnet at 40 img/s against 87 in NCHW, BENCHMARKS.md "Speed")."""
    conv = sum(
        p.numel()
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
        for p in m.parameters(recurse=False)
    )
    total = sum(p.numel() for p in model.parameters()) or 1
    slow = (nn.InstanceNorm2d, nn.GroupNorm) if low_precision else (nn.InstanceNorm2d,)
    return conv / total > 0.5 and not any(isinstance(m, slow) for m in model.modules())


def use_channels_last(model: nn.Module, memory_format: str, precision: str = "32-true") -> bool:
    """Resolve ``memory_format`` (``auto``/``channels_last``/``contiguous``) for ``model``
    running in the (resolved) ``precision``."""
    if memory_format not in MEMORY_FORMATS:
        raise ConfigError(
            f"unknown memory_format {memory_format!r}; use one of: {', '.join(MEMORY_FORMATS)}"
        )
    if memory_format == "auto":
        return is_conv_net(model, low_precision=autocast_dtype(precision) is not None)
    return memory_format == "channels_last"


def set_layout(model: nn.Module, channels_last: bool) -> nn.Module:
    """Move ``model``'s 4-D weights to NHWC (``channels_last``) or back to NCHW, in place."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return model.to(memory_format=fmt)


def as_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A 4-D batch in the model's layout (a no-op when it already is)."""
    if channels_last and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x
