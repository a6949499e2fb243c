"""Patients whose scans differ from the rest in ways that break models trained on them.

Two traits of the LGG set cost held-out patients their whole Dice: volumes whose
channels are all the same image (pre- and post-contrast missing, FLAIR repeated in
their place) and volumes much darker than the others (one held-out scan's brightest
FLAIR was ~5x below the usual). ``inspect`` lists such patients so a user can check
them, normalise per volume (``lgg`` option ``normalize=volume``) or train with
``data.channel_dropout`` / ``data.intensity_aug``.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

IDENTICAL_SHARE = 0.5  # a patient is flagged when most of its slices repeat one channel
DARK_RATIO = 0.5  # ... or when its brightness is below half the median patient's


def slice_traits(image: np.ndarray, flair_channel: int) -> tuple[bool | None, float | None]:
    """``(all channels identical, 99th percentile of the FLAIR brain pixels)`` of a
    C x H x W slice; None where it does not apply (one channel, no brain)."""
    a = np.asarray(image)
    same = (
        bool(all(np.array_equal(a[0], a[c]) for c in range(1, a.shape[0])))
        if a.shape[0] > 1
        else None
    )
    flair = a[min(flair_channel, a.shape[0] - 1)]
    brain = flair[flair > 0]
    return same, (float(np.percentile(brain, 99)) if brain.size else None)


def patient_quirks(
    patients: Sequence[str], same: Sequence[bool | None], level: Sequence[float | None]
) -> dict[str, Any]:
    """Per-patient flags from the slices' traits (see the module docstring)."""
    shares: dict[str, list[bool]] = defaultdict(list)
    levels: dict[str, list[float]] = defaultdict(list)
    for pid, s, lv in zip(patients, same, level, strict=True):
        if s is not None:
            shares[pid].append(s)
        if lv is not None:
            levels[pid].append(lv)
    identical = sorted(p for p, v in shares.items() if v and np.mean(v) >= IDENTICAL_SHARE)
    bright = {p: float(np.percentile(v, 99)) for p, v in levels.items() if v}
    median = statistics.median(bright.values()) if bright else None
    dark = sorted(p for p, b in bright.items() if median and b < DARK_RATIO * median)
    return {
        "identical_channels": identical,
        "dark": {p: round(bright[p] / median, 3) for p in dark} if median else {},
        "rule": (
            f"identical: >= {IDENTICAL_SHARE:.0%} of a patient's slices repeat one image in "
            f"every channel; dark: the patient's FLAIR 99th percentile below {DARK_RATIO} x "
            "the median patient's (value: the ratio)"
        ),
    }
