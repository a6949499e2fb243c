"""Two-stage pipeline: a classifier decides whether a slice has a tumor, a segmenter outlines it.

- :mod:`~braintumor.pipeline.gating`: the gate (tumor probability = 1 - P(no tumor)).
- :mod:`~braintumor.inference.scans`: images, NIfTI volumes, DICOM series, BraTS cases.
- :mod:`~braintumor.pipeline.core`: :class:`TwoStagePipeline`.
- :mod:`~braintumor.pipeline.run`: findings per input (masks, overlays, JSON).
- :mod:`~braintumor.pipeline.evaluate`: gated vs un-gated metrics on a patient split.
"""

from __future__ import annotations

from braintumor.inference.scans import ScanInput, load_input
from braintumor.pipeline.core import SliceResult, TwoStagePipeline
from braintumor.pipeline.gating import gate_mask, no_tumor_index, tumor_probability

__all__ = [
    "ScanInput",
    "SliceResult",
    "TwoStagePipeline",
    "gate_mask",
    "load_input",
    "no_tumor_index",
    "tumor_probability",
]
