"""Two-stage pipeline: a classifier decides whether a slice has a tumor, a segmenter outlines it.

- :mod:`~braintumor.pipeline.gating`: the gate (tumor probability = 1 - P(no tumor)).
- :mod:`~braintumor.pipeline.core`: :class:`TwoStagePipeline`.
- :mod:`~braintumor.pipeline.run`: findings per input (masks, overlays, JSON).
- :mod:`~braintumor.pipeline.evaluate`: gated vs un-gated metrics on a patient split.

Inputs are read by :func:`braintumor.inference.scans.load_input`, the reader that
``predict``, ``explain`` and ``serve`` use too.
"""

from __future__ import annotations

from braintumor.pipeline.core import SliceResult, TwoStagePipeline
from braintumor.pipeline.gating import gate_mask, no_tumor_index, tumor_probability

__all__ = [
    "SliceResult",
    "TwoStagePipeline",
    "gate_mask",
    "no_tumor_index",
    "tumor_probability",
]
