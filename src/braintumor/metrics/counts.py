"""Stage 1 of the segmentation metrics: per-image pixel counts, their scores, and HD95.

:func:`confusion_counts`: for every image and mask channel, the pixel counts tp, fp,
fn, tn of a *binarised* prediction against the truth; :func:`scores_from_counts`:
the scores of those counts; :func:`hd95`: the 95th-percentile Hausdorff distance
between the two boundaries. The empty-mask rules (what a ratio with a zero
denominator is worth, and HD95 when one mask is empty) are those described in
:mod:`braintumor.metrics.segmentation`, which reduces these per-image values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from torch import Tensor

ArrayLike = Tensor | np.ndarray
METRICS = ("dice", "iou", "miou", "pixel_accuracy", "precision", "recall", "fpr", "fnr", "hd95")


def _as_bool(x: ArrayLike, what: str) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if a.dtype != bool:
        if ((a != 0) & (a != 1)).any():
            raise ValueError(
                f"{what} must be binary 0/1; threshold probabilities first (logits_to_masks)"
            )
        a = a.astype(bool)
    return a


def confusion_counts(pred: ArrayLike, target: ArrayLike) -> np.ndarray:
    """Pixel counts of binary masks ``... x H x W``: array ``... x 4`` of (tp, fp, fn, tn)."""
    p, t = _as_bool(pred, "prediction"), _as_bool(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} != target shape {t.shape}")
    tp = (p & t).sum((-2, -1))
    fp = (p & ~t).sum((-2, -1))
    fn = (~p & t).sum((-2, -1))
    tn = p.shape[-2] * p.shape[-1] - tp - fp - fn
    return np.stack([tp, fp, fn, tn], axis=-1).astype(np.int64)


def _ratio(num: np.ndarray, den: np.ndarray, errors: np.ndarray, perfect: float) -> np.ndarray:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    out[(den == 0) & (errors == 0)] = perfect
    return out


def scores_from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Per-entry scores from ``... x 4`` counts, following the empty-mask rule above."""
    tp, fp, fn, tn = (counts[..., i].astype(np.float64) for i in range(4))
    err = fp + fn
    iou = _ratio(tp, tp + fp + fn, err, 1.0)
    iou_bg = _ratio(tn, tn + fp + fn, err, 1.0)  # IoU of the background class
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, err, 1.0),
        "iou": iou,
        "miou": (iou + iou_bg) / 2,  # mean over the foreground and background classes
        "pixel_accuracy": (tp + tn) / np.maximum(tp + fp + fn + tn, 1),
        "precision": _ratio(tp, tp + fp, err, 1.0),
        "recall": _ratio(tp, tp + fn, err, 1.0),
        "fpr": _ratio(fp, fp + tn, err, 0.0),
        "fnr": _ratio(fn, tp + fn, err, 0.0),
    }


def _boundary(mask: np.ndarray) -> np.ndarray:
    # Pixels on the image border count as boundary (erosion pads with background).
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def hd95(
    pred: ArrayLike,
    target: ArrayLike,
    spacing: Sequence[float] | None = None,
    empty: str = "exclude",
) -> float:
    """95th-percentile symmetric Hausdorff distance between two 2D binary masks.

    The larger of the two directed 95th percentiles of boundary-to-boundary
    distances (as MONAI's ``compute_hausdorff_distance(percentile=95)``).

    Args:
        pred: H x W prediction.
        target: H x W truth.
        spacing: (row, column) pixel size in mm; pixels when None.
        empty: when exactly one mask is empty: ``"exclude"`` -> NaN, ``"diagonal"``
            -> the image diagonal.
    """
    p, t = _as_bool(pred, "prediction"), _as_bool(target, "target")
    if p.ndim != 2 or p.shape != t.shape:
        raise ValueError(f"hd95 needs two H x W masks, got {p.shape} and {t.shape}")
    sp = tuple(float(s) for s in spacing) if spacing is not None else (1.0, 1.0)
    if not p.any() and not t.any():
        return 0.0
    if not p.any() or not t.any():
        if empty == "diagonal":
            return float(np.hypot(p.shape[0] * sp[0], p.shape[1] * sp[1]))
        return float("nan")
    bp, bt = _boundary(p), _boundary(t)
    to_t = ndimage.distance_transform_edt(~bt, sampling=sp)  # distance to nearest truth boundary
    to_p = ndimage.distance_transform_edt(~bp, sampling=sp)
    return float(max(np.percentile(to_t[bp], 95), np.percentile(to_p[bt], 95)))
