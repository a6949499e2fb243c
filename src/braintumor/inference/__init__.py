"""Using a trained run: what ``predict``, ``pipeline``, ``explain``, ``evaluate`` and
``serve`` share.

- :mod:`~braintumor.inference.runs`: the run-folder contract (``load_run``, the model
  card, ``save_run_model`` for the engine that writes runs).
- :class:`Predictor` (``inference/predictor.py``): a run's model plus the card's
  preprocessing; predictions on new images and volumes.
- :func:`load_input` / :class:`ScanInput` (``inference/scans.py``): one reader for
  every input (image files, NIfTI volumes, DICOM series, BraTS case folders).
- :func:`predict_inputs` (``inference/predict_files.py``): what ``braintumor predict`` does.

Names are imported lazily so that ``import braintumor.inference`` stays cheap (no
torch) for the CLI's start-up.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Predictor": "braintumor.inference.predictor",
    "pick_device": "braintumor.inference.predictor",
    "LoadedRun": "braintumor.inference.runs",
    "load_run": "braintumor.inference.runs",
    "save_run_model": "braintumor.inference.runs",
    "ScanInput": "braintumor.inference.scans",
    "load_input": "braintumor.inference.scans",
    "predict_inputs": "braintumor.inference.predict_files",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'braintumor.inference' has no attribute {name!r}")
