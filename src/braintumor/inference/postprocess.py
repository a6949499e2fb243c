"""Per-patient post-processing: drop small 3-D connected components of a mask.

A 2-D segmenter decides each slice on its own; scattered false positives then show
up as tiny islands that do not continue into neighbouring slices. Stacking a
patient's slices into a volume and removing the 3-D components smaller than
``min_voxels`` (a size chosen on the validation split, at the model's resolution)
removes those islands and keeps every lesion that spans more.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

# 26-connectivity: voxels touching by a face, an edge or a corner are one component.
STRUCTURE = np.ones((3, 3, 3), dtype=bool)


def drop_small_components(volume: np.ndarray, min_voxels: int) -> np.ndarray:
    """``volume`` (S x H x W, bool) without its components smaller than ``min_voxels``."""
    mask = np.asarray(volume, dtype=bool)
    if min_voxels <= 1 or not mask.any():
        return mask.copy()
    labels, n = ndimage.label(mask, structure=STRUCTURE)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_voxels
    keep[0] = False  # background
    return keep[labels]


def per_patient(
    masks: Sequence[np.ndarray],
    patient_ids: Sequence[str],
    order: Sequence[int],
    min_voxels: int,
) -> list[np.ndarray]:
    """Apply :func:`drop_small_components` to each patient's stacked slices.

    Args:
        masks: one H x W (or 1 x H x W) mask per slice.
        patient_ids: the slice's patient.
        order: the slice's position in its volume (sorts the stack).
        min_voxels: smallest component kept.

    Returns:
        The masks, in the input order, with the small components removed.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, pid in enumerate(patient_ids):
        groups[pid].append(i)
    out: list[np.ndarray] = [np.asarray(m) for m in masks]
    for idx in groups.values():
        idx = sorted(idx, key=lambda i: order[i])
        stack = np.stack(
            [np.asarray(masks[i]).reshape(np.asarray(masks[i]).shape[-2:]) for i in idx]
        )
        kept = drop_small_components(stack, min_voxels)
        for j, i in enumerate(idx):
            out[i] = kept[j].reshape(np.asarray(masks[i]).shape).astype(np.asarray(masks[i]).dtype)
    return out
