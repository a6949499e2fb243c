"""Per-patient post-processing: drop small 3-D connected components of a mask.

A 2-D segmenter decides each slice on its own; scattered false positives then show
up as tiny islands that do not continue into neighbouring slices. Stacking a
patient's slices into a volume and removing the 3-D components smaller than
``min_voxels`` (a size chosen on the validation split, at the model's resolution)
removes those islands and keeps every lesion that spans more.

With ``keep_largest`` the removal cannot empty a volume: when every component of a
volume is below the size, its largest one is kept, so a small tumor that the network
found as one small component survives. A healthy volume then keeps its largest false
positive, which is why the choice is made on val (``engine/levers.py``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Levers:
    """A run's inference levers (the card's ``inference`` entry; chosen on val by
    ``engine/levers.py``): flip TTA, the smallest 3-D component kept per volume, in
    voxels at the network's input resolution, the area threshold of the
    segmenter-as-gate, and whether the removal keeps a volume's largest component
    rather than empty it."""

    tta: bool = False
    min_component_voxels: int = 0
    # The pipeline's default gate: a slice is "tumor" when the predicted area fraction
    # of its post-processed mask is at least this (None: not chosen; engine/levers.py).
    gate_area: float | None = None
    # When the removal would leave a volume empty, keep its largest component instead.
    keep_largest: bool = False

    @classmethod
    def from_card(cls, card: dict[str, Any] | None) -> Levers:
        raw = (card or {}).get("inference") or {}
        gate = raw.get("gate_area")
        return cls(
            bool(raw.get("tta", False)),
            int(raw.get("min_component_voxels", 0) or 0),
            float(gate) if gate is not None else None,
            bool(raw.get("keep_largest", False)),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def any(self) -> bool:
        return self.tta or self.min_component_voxels > 1 or self.gate_area is not None


# 26-connectivity: voxels touching by a face, an edge or a corner are one component.
STRUCTURE = np.ones((3, 3, 3), dtype=bool)


def drop_small_components(
    volume: np.ndarray, min_voxels: int, keep_largest: bool = False
) -> np.ndarray:
    """``volume`` (S x H x W, bool) without its components smaller than ``min_voxels``.

    ``keep_largest``: a volume whose components are all smaller keeps its largest one
    (the first of equal size) rather than becoming empty.
    """
    mask = np.asarray(volume, dtype=bool)
    if min_voxels <= 1 or not mask.any():
        return mask.copy()
    labels, n = ndimage.label(mask, structure=STRUCTURE)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_voxels
    keep[0] = False  # background
    if keep_largest and not keep.any():
        keep[1 + int(np.argmax(sizes[1:]))] = True
    return keep[labels]


def drop_small_probabilities(
    probs: Sequence[np.ndarray],
    threshold: float,
    min_voxels: int,
    image_size: int,
    keep_largest: bool = False,
) -> list[np.ndarray]:
    """One volume's K x H x W slice probabilities with small 3-D components zeroed.

    ``min_voxels`` counts voxels at the network's ``image_size``; on the output grid
    (H x W) it is scaled by the area ratio. Probabilities of removed voxels become 0,
    so masks at any threshold drop them; the rest are unchanged. ``keep_largest``: see
    :func:`drop_small_components`.
    """
    if min_voxels <= 1 or not len(probs):
        return list(probs)
    stack = np.stack([np.asarray(p, dtype=np.float32) for p in probs])  # S x K x H x W
    h, w = stack.shape[-2:]
    scaled = max(1, round(min_voxels * h * w / float(image_size) ** 2))
    for k in range(stack.shape[1]):
        fg = stack[:, k] > threshold
        stack[:, k][fg & ~drop_small_components(fg, scaled, keep_largest)] = 0.0
    return list(stack)


def per_patient(
    masks: Sequence[np.ndarray],
    patient_ids: Sequence[str],
    order: Sequence[int],
    min_voxels: int,
    keep_largest: bool = False,
) -> list[np.ndarray]:
    """Apply :func:`drop_small_components` to each patient's stacked slices.

    Args:
        masks: one H x W (or 1 x H x W) mask per slice.
        patient_ids: the slice's patient.
        order: the slice's position in its volume (sorts the stack).
        min_voxels: smallest component kept.
        keep_largest: a patient whose components are all smaller keeps the largest.

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
        kept = drop_small_components(stack, min_voxels, keep_largest)
        for j, i in enumerate(idx):
            out[i] = kept[j].reshape(np.asarray(masks[i]).shape).astype(np.asarray(masks[i]).dtype)
    return out
