"""Classification metrics computed once over a whole split.

Predictions are collected for every sample of a split and the metrics computed in
one call, never averaged over batches. Conventions (those of scikit-learn, so the
numbers can be compared with published ones):

- rows of the confusion matrix are true classes, columns predicted classes;
- a precision/recall/F1 with an empty denominator is 0;
- macro averages run over the classes that occur in the targets *or* the
  predictions (a class absent from both says nothing about the model);
- balanced accuracy is the mean recall over the classes present in the targets;
- AUROC is one-vs-rest per class, averaged over the classes that have both
  positive and negative samples (NaN when no class has);
- ECE uses 15 equal-width confidence bins over (0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "auroc_binary",
    "classification_metrics",
    "confusion_matrix",
    "expected_calibration_error",
]


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def confusion_matrix(targets: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """C x C counts, rows = true class, columns = predicted class."""
    idx = targets.astype(np.int64) * num_classes + preds.astype(np.int64)
    return np.bincount(idx, minlength=num_classes**2).reshape(num_classes, num_classes)


def auroc_binary(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties count half).

    Returns NaN when only one class is present.
    """
    positive = positive.astype(bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(scores)  # average ranks handle ties
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def expected_calibration_error(
    confidences: np.ndarray, correct: np.ndarray, n_bins: int = 15
) -> float:
    """ECE: sum over equal-width bins of |accuracy - confidence| weighted by bin size."""
    if confidences.size == 0:
        return math.nan
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bin b holds confidences in (edges[b], edges[b+1]]; a confidence of exactly 0
    # (impossible for a softmax maximum) would fall into the first bin.
    bins = np.clip(np.searchsorted(edges, confidences, side="left") - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - confidences[sel].mean())
    return float(ece)


def classification_metrics(probs: Any, targets: Any, class_names: Sequence[str]) -> dict[str, Any]:
    """All classification metrics of one split.

    Args:
        probs: N x C class probabilities (softmax outputs), numpy array or tensor.
        targets: N true class indices.
        class_names: the C class names (index = label).

    Returns:
        ``accuracy, balanced_accuracy, precision_macro, recall_macro, f1_macro,
        f1_weighted, confidence, ece, auroc_macro`` (floats), ``confusion_matrix``
        (list of lists) and ``per_class`` ({name: precision, recall, f1, support}).
    """
    p = np.asarray(probs.detach().cpu() if hasattr(probs, "detach") else probs, dtype=np.float64)
    t = np.asarray(targets.detach().cpu() if hasattr(targets, "detach") else targets)
    t = t.astype(np.int64).reshape(-1)
    n_classes = len(class_names)
    if p.ndim != 2 or p.shape[1] != n_classes:
        raise ValueError(f"probs must be N x {n_classes}, got shape {p.shape}")
    if p.shape[0] != t.shape[0]:
        raise ValueError(f"{p.shape[0]} predictions but {t.shape[0]} targets")
    if t.size and (t.min() < 0 or t.max() >= n_classes):
        raise ValueError(f"targets must lie in [0, {n_classes - 1}]")
    n = t.size
    preds = p.argmax(axis=1) if n else t
    cm = confusion_matrix(t, preds, n_classes)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    seen = (support > 0) | (predicted > 0)
    present = support > 0

    def macro(values: np.ndarray) -> float:
        return float(values[seen].mean()) if seen.any() else math.nan

    conf = p.max(axis=1) if n else np.zeros(0)
    aucs = [auroc_binary(p[:, c], t == c) for c in range(n_classes)]
    finite_aucs = [a for a in aucs if not math.isnan(a)]
    return {
        "accuracy": float(tp.sum() / n) if n else math.nan,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else math.nan,
        "precision_macro": macro(precision),
        "recall_macro": macro(recall),
        "f1_macro": macro(f1),
        "f1_weighted": float((f1 * support).sum() / n) if n else math.nan,
        "confidence": float(conf.mean()) if n else math.nan,
        "ece": expected_calibration_error(conf, preds == t),
        "auroc_macro": float(np.mean(finite_aucs)) if finite_aucs else math.nan,
        "confusion_matrix": cm.tolist(),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
    }
