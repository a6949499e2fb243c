"""Every intensity scaling in the package, defined once.

Two scales are in use (``DatasetFormat.intensity``, recorded in the model card as
``normalisation``):

- ``unit``: [0, 1]. 8-bit files are divided by 255 (the file's own scale, so the same
  pixel value always means the same thing); float data already on [0, 1] is kept;
  anything else (16-bit, float, DICOM, scanner units) is scaled by a robust min/max
  (0.5th/99.5th percentile, :func:`robust_scale`).
- ``zscore``: zero mean, unit variance inside the non-zero "brain" voxels, 0 outside,
  once per volume and sequence (:func:`zscore_brain`, what the ``brats`` format does).

On top of ``unit``, LGG runs may scale each patient's volume (``lgg`` option
``normalize=volume``, recorded in the card as ``normalisation.per_volume``): every
channel divided by its 99th percentile over the volume's brain (:func:`volume_scale`,
:func:`apply_volume_scale`); a slice without its volume uses its own percentile.

Readers (:mod:`braintumor.data.io`), formats, training, evaluation and inference all
call these functions, so a scan is scaled the same way wherever it enters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SCALES = ("unit", "zscore")


def robust_scale(
    a: np.ndarray, low: float = 0.5, high: float = 99.5, *, rows: Any = None
) -> np.ndarray:
    """Scale to [0, 1] by the ``low``/``high`` percentiles (clipped); constant -> zeros.

    ``rows`` (an index into the first axis, e.g. a list of slices of a volume): return
    only ``a[rows]``, scaled by the percentiles of all of ``a`` (the same values as
    ``robust_scale(a)[rows]`` without scaling the rest).
    """
    a = np.asarray(a, dtype=np.float32)
    part = a if rows is None else a[rows]
    ok = np.isfinite(a)
    all_finite = bool(ok.all())
    # All finite (the usual case): no masked copy and no nan_to_num copy of the input.
    finite = a.reshape(-1) if all_finite else a[ok]
    if finite.size == 0:
        return np.zeros_like(part)
    lo, hi = np.percentile(finite, [low, high])
    if hi <= lo:  # (nearly) constant image: percentiles collapse, fall back to min/max
        lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        return np.zeros_like(part)
    out = ((part if all_finite else np.nan_to_num(part, nan=lo)) - lo) / (hi - lo)
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)


def to_unit(a: np.ndarray) -> np.ndarray:
    """An image on the ``unit`` scale: bool as 0/1, uint8 / 255, [0, 1] floats kept,
    anything else by :func:`robust_scale`."""
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    if np.issubdtype(a.dtype, np.floating) and a.size and 0.0 <= a.min() and a.max() <= 1.0:
        return a.astype(np.float32)  # already on the unit scale
    return robust_scale(a)


def zscore_brain(volume: np.ndarray) -> np.ndarray:
    """Z-score inside the brain (nonzero voxels); the background stays 0."""
    brain = volume != 0
    out = np.zeros_like(volume, dtype=np.float32)
    if brain.any():
        values = volume[brain]
        std = float(values.std())
        out[brain] = (values - values.mean()) / (std if std > 0 else 1.0)
    return out


def rescale_intensity(image: np.ndarray, src: str, dst: str) -> np.ndarray:
    """Bring a C x H x W slice from intensity scale ``src`` to ``dst`` (per channel).

    Scales are ``"unit"`` ([0, 1], robust min/max) and ``"zscore"`` (z-score inside the
    brain). A model trained on one scale sees new data on the same scale; per-slice
    statistics only approximate the per-volume ones the ``brats`` format uses.
    """
    if src == dst:
        return image
    if dst == "unit":
        return np.stack([robust_scale(c) for c in image]).astype(np.float32)
    return np.stack([zscore_brain(c) for c in image]).astype(np.float32)


def volume_scale(volume: np.ndarray, q: float = 99.0) -> np.ndarray:
    """Per-channel ``q``-th percentile of the brain (non-zero pixels) of an S x C x H x W
    volume (or one C x H x W slice); 1 for a channel with no signal."""
    v = np.asarray(volume, dtype=np.float32)
    if v.ndim == 3:
        v = v[None]
    scales = []
    for c in range(v.shape[1]):
        values = v[:, c][v[:, c] > 0]
        scales.append(float(np.percentile(values, q)) if values.size else 1.0)
    return np.maximum(np.asarray(scales, np.float32), 1e-6)


def apply_volume_scale(image: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """A C x H x W slice divided by its volume's per-channel scales, clipped to [0, 1]."""
    out = np.asarray(image, np.float32) / np.asarray(scales, np.float32)[:, None, None]
    return np.clip(out, 0.0, 1.0)


def scale_scan(volume: np.ndarray, scale: str, unit_scaled: bool = False) -> np.ndarray:
    """A C x ... scan (one image or a whole volume per channel) on ``scale``, float32.

    ``unit``: kept when already on [0, 1] (``unit_scaled``: the reader put it there),
    else :func:`robust_scale` per channel over the whole volume. ``zscore``:
    :func:`zscore_brain` per channel and volume (NaN read as background).
    """
    if scale not in SCALES:
        raise ValueError(f"unknown intensity scale {scale!r}; use one of {SCALES}")
    vol = np.asarray(volume)
    if scale == "unit":
        # As read_image does: float data already on [0, 1] keeps its values.
        if unit_scaled or (vol.size > 0 and vol.min() >= 0 and vol.max() <= 1):
            return vol.astype(np.float32, copy=False)
        return np.stack([robust_scale(c) for c in vol])
    return np.stack([zscore_brain(np.nan_to_num(c)) for c in vol])
