"""Inference runtimes for :class:`~braintumor.inference.predictor.Predictor`.

- ``eager``: the PyTorch module, with the card's precision and memory layout.
- ``onnxruntime``: the network exported to ONNX (fp32, :mod:`braintumor.serve.export`)
  and run by ONNX Runtime on the CPU. Optional: when onnxruntime is missing or a
  model does not export, the predictor says so in one line and runs eager.
- ``auto``: both, timed on one batch at the card's image size; the faster one is kept.

An export costs seconds, so a Predictor makes it once (in memory, no file left
behind) and reuses the session for every batch.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

BACKENDS = ("eager", "onnxruntime", "auto")


class OrtModule(nn.Module):
    """An ONNX Runtime session behind the ``nn.Module`` surface (fp32 in, fp32 out)."""

    def __init__(self, session: Any, name: str) -> None:
        super().__init__()
        self.session, self.name = session, name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feed = np.ascontiguousarray(x.detach().cpu().float().numpy())
        return torch.from_numpy(self.session.run(None, {self.name: feed})[0])


def onnx_module(model: nn.Module, channels: int, size: int, threads: int) -> OrtModule:
    """``model`` exported at ``channels x size x size`` (batch dynamic) in an ORT session.

    Raises:
        Exception: whatever the export or onnxruntime raises (the caller falls back).
    """
    import onnxruntime as ort

    from braintumor.inference.exportable import INPUT_NAME, OUTPUT_NAME, exportable

    model = model.eval().cpu()
    dummy = torch.rand(1, channels, size, size)
    with tempfile.TemporaryDirectory(prefix="braintumor-ort-") as tmp:
        path = Path(tmp) / "model.onnx"
        # The tracer's warnings (input checks become constants) and the exporter's
        # chatter say nothing a user can act on here.
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                exportable(model, dummy),
                (dummy,),
                str(path),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=17,
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                dynamo=False,
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return OrtModule(session, INPUT_NAME)


def try_onnx(model: nn.Module, channels: int, size: int, label: str) -> OrtModule | None:
    """:func:`onnx_module`, or None after one line on stderr saying why (eager runs)."""
    try:
        return onnx_module(model, channels, size, torch.get_num_threads())
    except Exception as exc:  # any failure here only means: no fast path for this model
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        print(f"note: ONNX Runtime not used for {label} ({reason}); running eager", file=sys.stderr)
        return None


def seconds_per_batch(run: Callable[[], Any], repeats: int = 2) -> float:
    """Best of ``repeats`` timed calls after one warm-up call."""
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def choose_backend(predictor: Any, backend: str | None) -> str:
    """Resolve ``eager`` / ``onnxruntime`` / ``auto`` for a Predictor and install the
    chosen network as ``predictor._network``; returns the runtime that runs."""
    from braintumor.errors import ConfigError

    card = predictor.card
    choice = backend or (card.get("runtime") or {}).get("backend", "eager")
    if choice not in BACKENDS:
        raise ConfigError(f"unknown backend {choice!r}; use one of: {', '.join(BACKENDS)}")
    if choice == "eager" or predictor.device.type != "cpu":
        return "eager"
    # The network's own input channels (2.5D runs stack neighbours onto the card's).
    channels = int(card.get("in_channels", predictor.channels))
    size = predictor.image_size
    ort = try_onnx(predictor.model, channels, size, str(card.get("name", "this model")))
    if ort is None:
        return "eager"
    if choice == "auto":
        batch = np.random.default_rng(0).random((16, channels, size, size)).astype(np.float32)
        eager = seconds_per_batch(lambda: predictor._forward(batch))
        predictor._network = ort
        if seconds_per_batch(lambda: predictor._forward(batch)) >= eager:
            predictor._network = predictor.model
            return "eager"
    predictor._network = ort
    return "onnxruntime"


__all__ = [
    "BACKENDS",
    "OrtModule",
    "choose_backend",
    "onnx_module",
    "seconds_per_batch",
    "try_onnx",
]
