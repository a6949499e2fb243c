"""inspect flags patients with identical channels and patients much darker than the rest."""

from __future__ import annotations

import numpy as np

from braintumor.data.audit.quirks import patient_quirks, slice_traits


def test_slice_traits() -> None:
    flair = np.zeros((4, 4), np.float32)
    flair[1:3, 1:3] = 0.6
    same, level = slice_traits(np.stack([flair, flair, flair]), flair_channel=1)
    assert same is True and level == np.float32(0.6)
    other = np.stack([flair * 0.5, flair, flair])
    assert slice_traits(other, 1)[0] is False
    assert slice_traits(flair[None], 0)[0] is None  # one channel: nothing to compare
    assert slice_traits(np.zeros((3, 4, 4)), 1)[1] is None  # no brain


def test_patient_quirks_flags_identical_and_dark_patients() -> None:
    pids = ["a", "a", "b", "b", "c", "c", "d", "d"]
    same = [True, True, False, True, False, False, False, False]
    level = [0.6, 0.6, 0.55, 0.6, 0.12, 0.1, 0.6, 0.62]
    q = patient_quirks(pids, same, level)
    assert q["identical_channels"] == ["a", "b"]  # b: half of its slices
    assert list(q["dark"]) == ["c"] and q["dark"]["c"] < 0.5
