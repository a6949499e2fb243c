"""ONNX Runtime as an inference variant: a network exported in memory and run by ORT.

Used by :class:`~braintumor.inference.backends.Runtime` (``onnxruntime`` and ``auto``);
the graph is :func:`~braintumor.inference.exportable.exportable`'s, as ``serve``'s
export writes it.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


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


__all__ = ["OrtModule", "onnx_module", "try_onnx"]
