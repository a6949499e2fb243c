"""Export a trained run to ONNX, with its model card embedded as metadata.

The exported graph takes the *preprocessed* input (``N x C x S x S`` float32 at the
run's image size, intensities on the training scale) and returns logits, exactly
like the PyTorch model. How to get there from a raw scan (crop, pad, resize,
channels) is written into the ONNX ``metadata_props`` so another runtime can
reproduce it without this package.

The file is written atomically: the graph goes to a temporary file next to the
target, is checked against PyTorch with onnxruntime, and only then renamed over
the target. A failed export never leaves a partial file and never replaces a
good one.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from braintumor import __version__
from braintumor.errors import BrainTumorError
from braintumor.inference.exportable import (  # re-exported: serve's public names
    INPUT_NAME,
    OUTPUT_NAME,
    exportable,
)
from braintumor.inference.runs import load_run

# Card fields copied into the ONNX metadata (JSON-encoded when not a string).
CARD_FIELDS = (
    "name",
    "task",
    "classes",
    "mask_channels",
    "preprocessing",
    "threshold",
    "in_channels",
    "num_classes",
)


class ExportError(BrainTumorError):
    """The ONNX graph could not be written or does not reproduce the PyTorch model."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote."""

    path: Path
    max_abs_diff: float  # largest |onnxruntime - pytorch| on the random check input
    input_shape: tuple[int, ...]  # shape of the check input


def onnx_metadata(card: Mapping[str, Any]) -> dict[str, str]:
    """The model card fields stored as ONNX ``metadata_props`` (all values strings)."""

    meta = {
        "producer": f"braintumor {__version__}",
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "output_kind": "logits",
    }
    for key in CARD_FIELDS:
        value = card.get(key)
        if value is None:
            continue
        meta[key] = value if isinstance(value, str) else json.dumps(value)
    return meta


def export_model(
    model: nn.Module,
    card: Mapping[str, Any],
    out: str | Path,
    *,
    opset: int = 17,
    dynamic_batch: bool = True,
    atol: float = 1e-4,
    rtol: float = 1e-4,
    seed: int = 0,
) -> ExportResult:
    """Export ``model`` to ``out`` and check it with onnxruntime.

    Args:
        model: A model returning logits; it is put in eval mode on the CPU.
        card: The run's model card (``in_channels`` and ``preprocessing.image_size``
            give the input shape; the rest goes into the metadata).
        out: Target ``.onnx`` file; replaced only if the export and the check succeed.
        opset: ONNX opset version.
        dynamic_batch: Let the batch dimension vary (checked with a batch of 2).
        atol: Tolerated absolute difference between ONNX and PyTorch logits ...
        rtol: ... plus this fraction of the largest PyTorch logit (float32 rounding
            grows with the magnitude of the logits).
        seed: Seed of the random check input.

    Raises:
        ExportError: The export failed or its outputs differ from PyTorch by more than ``atol``.
    """
    import onnx

    out = Path(out).expanduser()
    if not out.parent.is_dir():
        raise ExportError(f"output folder {out.parent} does not exist; create it or pass --out")
    in_channels = int(card["in_channels"])
    size = int(card["preprocessing"]["image_size"])
    model = model.eval().cpu()
    gen = torch.Generator().manual_seed(seed)
    dummy = torch.rand(1, in_channels, size, size, generator=gen)
    # The check uses a different batch size when the batch is dynamic, so a graph that
    # silently baked in batch 1 fails here instead of in production.
    check = torch.rand(2 if dynamic_batch else 1, in_channels, size, size, generator=gen)
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None

    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The models validate their input (channels, minimum size) with Python ifs;
            # the tracer warns that these become constants, which is what we want for a
            # fixed-size graph. The batch axis is checked below with another batch size.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # The torch.export-based exporter (dynamo=True) needs onnxscript, which is
            # not a dependency; the TorchScript exporter covers every model in the zoo
            # (with the pooling rewrite of `exportable`).
            torch.onnx.export(
                exportable(model, dummy),
                (dummy,),
                str(tmp),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                dynamic_axes=axes,
                dynamo=False,
            )
            expected = model(check).numpy()
        proto = onnx.load(str(tmp))
        for key, value in onnx_metadata(card).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        got = run_onnx(tmp, check.numpy())
        if got.shape != expected.shape:
            raise ExportError(
                f"ONNX output shape {got.shape} differs from PyTorch {expected.shape}"
            )
        diff = float(np.max(np.abs(got - expected)))
        tol = atol + rtol * float(np.max(np.abs(expected)))
        if not diff <= tol:  # also catches NaN
            raise ExportError(
                f"ONNX output differs from PyTorch by {diff:.3g} (> {tol:.3g}); "
                f"try another --opset, the model uses an op that does not export faithfully"
            )
        os.replace(tmp, out)
    except ExportError:
        raise
    except Exception as exc:
        # torch's messages run on with a request for bug reports and an IR dump: keep
        # the first sentence, which names the unsupported operation.
        reason = str(exc).splitlines()[0].split(" Please feel free")[0].split("  [Caused")[0]
        raise ExportError(
            f"ONNX export of {card.get('name', 'the model')} (input {tuple(dummy.shape)}) "
            f"to {out} failed: {type(exc).__name__}: {reason}"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(out, diff, tuple(check.shape))


def run_onnx(path: str | Path, x: np.ndarray) -> np.ndarray:
    """Run an exported graph on one float32 batch with onnxruntime (CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: x.astype(np.float32)})[0]


class OnnxModel(nn.Module):
    """An exported graph behind the ``nn.Module`` surface, so that a
    :class:`~braintumor.inference.predictor.Predictor` (the card's intensity and
    geometry) can run it: ``Predictor(OnnxModel(path), card, "cpu")``."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feed = {INPUT_NAME: x.detach().cpu().numpy().astype(np.float32)}
        return torch.from_numpy(self.session.run([OUTPUT_NAME], feed)[0])


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def export_run(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    opset: int = 17,
    dynamic_batch: bool = True,
    atol: float = 1e-4,
) -> ExportResult:
    """Export the model of a run folder (default target ``RUN/model.onnx``)."""
    run = load_run(run_dir)
    target = Path(out) if out is not None else Path(run_dir) / "model.onnx"
    return export_model(
        run.model, run.card, target, opset=opset, dynamic_batch=dynamic_batch, atol=atol
    )
