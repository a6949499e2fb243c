"""Turn model probabilities into the JSON the service returns."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from braintumor.figures.overlay import overlay_rgb, region_color


def png_base64(array: np.ndarray) -> str:
    """Encode an H x W (gray) or H x W x 3 (RGB) uint8 array as a base64 PNG."""

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def classification_result(probs: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """``{"class", "class_index", "probabilities": {name: p}}`` from one C-vector."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    names = [classes[i] if i < len(classes) else f"class {i}" for i in range(p.size)]
    best = int(np.argmax(p))
    return {
        "class": names[best],
        "class_index": best,
        "probabilities": {n: round(float(v), 6) for n, v in zip(names, p, strict=True)},
    }


def bounding_box(region: np.ndarray) -> dict[str, int] | None:
    """Inclusive pixel box ``{x_min, y_min, x_max, y_max}`` of a 2D mask, None if empty."""
    ys, xs = np.nonzero(region)
    if ys.size == 0:
        return None
    return {
        "x_min": int(xs.min()),
        "y_min": int(ys.min()),
        "x_max": int(xs.max()),
        "y_max": int(ys.max()),
    }


def segmentation_result(
    image: np.ndarray, probs: np.ndarray, mask_channels: Sequence[str], threshold: float
) -> dict[str, Any]:
    """Area, box, overlay and mask from per-pixel probabilities at the image's size.

    Args:
        image: the scan as read, C x H x W.
        probs: K x H x W (or H x W) probabilities, same H x W as ``image``.
        mask_channels: names of the K channels.
        threshold: a pixel belongs to a region when its probability exceeds this.

    Returns:
        ``tumor_area_px`` and ``bbox`` of the union of all regions (the whole tumour for
        nested BraTS regions), ``regions`` (pixels per channel), ``colors`` (each
        region's colour in the overlay), ``overlay_png`` (the scan with each region in
        its colour) and ``mask_png`` (union, 0/255), both base64 PNG.
    """

    p = np.asarray(probs, dtype=np.float32)
    if p.ndim == 2:
        p = p[None]
    if p.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"probabilities {p.shape} do not match the image {image.shape}")
    masks = p > threshold
    names = [
        mask_channels[k] if k < len(mask_channels) else f"class {k}" for k in range(p.shape[0])
    ]
    union = masks.any(axis=0)
    return {
        "threshold": float(threshold),
        "tumor_area_px": int(union.sum()),
        "tumor_fraction": round(float(union.mean()), 6),
        "bbox": bounding_box(union),
        "regions": {n: int(m.sum()) for n, m in zip(names, masks, strict=True)},
        "colors": {
            n: "#{:02x}{:02x}{:02x}".format(*region_color(n, k)) for k, n in enumerate(names)
        },
        "max_probability": round(float(p.max()), 6),
        "overlay_png": png_base64(overlay_rgb(image, masks.astype(np.uint8), names)),
        "mask_png": png_base64(union.astype(np.uint8) * 255),
    }
