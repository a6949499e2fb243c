"""Inspect a data set: counts, sizes, modes, masks, and exact / near duplicates.

:func:`inspect_dataset` makes one pass over a format's records and returns a
JSON-able summary. Duplicates are what inflates published scores on the popular
Kaggle sets (the same image in Training and Testing), so they are counted per
split and across splits, exactly (SHA-1) and approximately (perceptual hash).

- :mod:`.scan` reads one record: content digest, size, mode, tumor flag and a
  64 px thumbnail; blank samples (one constant value) are counted as ``n_blank``
  and left out of the duplicate counts.
- :mod:`.duplicates` counts exact copies (same digest) and near copies (pHash
  candidates confirmed by the correlation of edge maps), within and across splits.
- :mod:`.summary` drives the pass and writes the summary and its warnings.
- :mod:`.preview` draws a PNG grid of random samples with their masks.
"""

from __future__ import annotations

from braintumor.data.audit.duplicates import (
    EDGE_CORRELATION,
    NEAR_THRESHOLD,
    close_pairs,
    edge_correlation,
    phash,
)
from braintumor.data.audit.preview import save_preview_grid
from braintumor.data.audit.scan import THUMB
from braintumor.data.audit.summary import (
    NO_TUMOR_CLASSES,
    SPLIT_ORDER,
    assign_splits,
    inspect_dataset,
)

__all__ = [
    "EDGE_CORRELATION",
    "NEAR_THRESHOLD",
    "NO_TUMOR_CLASSES",
    "SPLIT_ORDER",
    "THUMB",
    "assign_splits",
    "close_pairs",
    "edge_correlation",
    "inspect_dataset",
    "phash",
    "save_preview_grid",
]
