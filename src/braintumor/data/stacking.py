"""2.5D input: the neighbouring slices' FLAIR as extra channels.

A 2-D segmenter sees one slice; a radiologist scrolls. Giving the network the FLAIR
of the ``k`` slices above and below (``data.neighbours=k``) adds through-plane
context at almost no cost: ``2k`` more input channels. At the top and bottom of a
volume the missing neighbour is the edge slice itself (replicate padding), so the
extra channels never mix two patients. Samples that are not part of an ordered
volume (2-D data sets, a single uploaded slice) get their own FLAIR in every extra
channel, which is what the edge rule gives a one-slice volume.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from braintumor.data.base import Record


def slice_position(rec: Record) -> int | None:
    """The record's index along the volume's slice axis, or None if it has none."""
    for key in ("slice", "slice_number", "slice_index"):
        value = rec.extra.get(key)
        if isinstance(value, int) and value >= 0:
            return value
    return None


def volume_key(rec: Record) -> str:
    """Records with the same key are slices of one volume (one case of one patient)."""
    case = rec.extra.get("case")
    if case is not None:
        return f"{rec.patient_id}/{case}"
    return f"{rec.patient_id}/{rec.path}" if "slice" in rec.extra else f"{rec.patient_id}"


def neighbour_index(records: Sequence[Record], k: int) -> np.ndarray:
    """``(n, 2k)`` indices into ``records``: slices -k..-1 then +1..+k of each record.

    Neighbours are found among the given records only, ordered by slice position
    within each volume; beyond either end of a volume the edge slice is repeated.
    """
    n = len(records)
    out = np.repeat(np.arange(n)[:, None], 2 * k, axis=1)
    if k == 0:
        return out
    volumes: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for i, rec in enumerate(records):
        pos = slice_position(rec)
        if pos is not None:
            volumes[volume_key(rec)].append((pos, i))
    offsets = [*range(-k, 0), *range(1, k + 1)]
    for members in volumes.values():
        ordered = [i for _, i in sorted(members)]
        last = len(ordered) - 1
        for j, i in enumerate(ordered):
            out[i] = [ordered[min(max(j + d, 0), last)] for d in offsets]
    return out


def volume_neighbours(n: int, k: int) -> np.ndarray:
    """:func:`neighbour_index` for the ``n`` ordered slices of one volume."""
    offsets = [*range(-k, 0), *range(1, k + 1)]
    return np.array([[min(max(i + d, 0), n - 1) for d in offsets] for i in range(n)], int).reshape(
        n, 2 * k
    )


def stack_neighbours(
    image: np.ndarray, neighbours: Sequence[np.ndarray], flair_channel: int
) -> np.ndarray:
    """``image`` (C x H x W) with each neighbour's FLAIR channel appended."""
    if not len(neighbours):
        return image
    c = min(flair_channel, image.shape[0] - 1)
    extra = [np.asarray(nb[c : c + 1], dtype=image.dtype) for nb in neighbours]
    return np.concatenate([image, *extra], axis=0)
