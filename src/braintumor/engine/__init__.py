"""One training engine for every model and both tasks.

- :func:`train` (``engine/train.py``): fit, pick the best validation epoch, test once,
  write the run folder; ``cfg.folds > 1`` runs patient-level K-fold CV.
- :func:`evaluate_run` (``engine/evaluate.py``): metrics of a saved run on a split.

Using a trained run (run folders, :class:`~braintumor.inference.Predictor`, reading
scans) lives in :mod:`braintumor.inference`.

The task-specific parts live in ``engine/tasks.py``. Names are imported lazily so
that ``import braintumor.engine`` does not load Lightning until training is needed.
``train`` is not re-exported here because ``braintumor.engine.train`` is also the
name of its module: import it as ``from braintumor.engine.train import train``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "evaluate_run": "braintumor.engine.evaluate",
    "evaluate_model": "braintumor.engine.evaluate",
    "ClassificationTask": "braintumor.engine.tasks",
    "SegmentationTask": "braintumor.engine.tasks",
    "create_task": "braintumor.engine.tasks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'braintumor.engine' has no attribute {name!r}")
