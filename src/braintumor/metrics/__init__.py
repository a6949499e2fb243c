"""Evaluation metrics: ``segmentation`` (two-stage counts -> scores) and ``classification``."""

from __future__ import annotations

from braintumor.metrics.counts import confusion_counts, hd95, scores_from_counts
from braintumor.metrics.masks import brats_regions, logits_to_masks
from braintumor.metrics.segmentation import SegmentationEvaluator

__all__ = [
    "SegmentationEvaluator",
    "brats_regions",
    "confusion_counts",
    "hd95",
    "logits_to_masks",
    "scores_from_counts",
]
