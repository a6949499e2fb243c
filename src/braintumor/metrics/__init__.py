"""Evaluation metrics: ``segmentation`` (two-stage counts -> scores) and ``classification``."""

from __future__ import annotations

from braintumor.metrics.segmentation import (
    SegmentationEvaluator,
    brats_regions,
    confusion_counts,
    hd95,
    logits_to_masks,
    scores_from_counts,
)

__all__ = [
    "SegmentationEvaluator",
    "brats_regions",
    "confusion_counts",
    "hd95",
    "logits_to_masks",
    "scores_from_counts",
]
