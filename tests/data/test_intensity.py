"""Intensity scales: unit, z-score inside the brain, and conversion between them."""

from __future__ import annotations

import numpy as np
import pytest

from braintumor.data.intensity import (
    rescale_intensity,
    robust_scale,
    scale_scan,
    to_unit,
    zscore_brain,
)


def test_zscore_brain_per_volume() -> None:
    vol = np.zeros((4, 4, 4), np.float32)
    vol[1:3, 1:3, :] = np.arange(16, dtype=np.float32).reshape(2, 2, 4) + 50
    z = zscore_brain(vol)
    brain = vol != 0
    assert abs(z[brain].mean()) < 1e-5 and abs(z[brain].std() - 1) < 1e-5
    assert (z[~brain] == 0).all()


def test_rescale_intensity_between_unit_and_zscore() -> None:
    rng = np.random.default_rng(0)
    unit = np.zeros((2, 16, 16), np.float32)
    unit[:, 4:12, 4:12] = rng.uniform(0.2, 0.9, (2, 8, 8))  # a "brain" on a zero background
    assert rescale_intensity(unit, "unit", "unit") is unit
    z = rescale_intensity(unit, "unit", "zscore")
    brain = z[:, 4:12, 4:12]
    assert np.allclose(brain.mean(axis=(1, 2)), 0, atol=1e-4)
    assert np.allclose(brain.std(axis=(1, 2)), 1, atol=1e-2)
    back = rescale_intensity(z, "zscore", "unit")
    assert back.min() >= 0.0 and back.max() <= 1.0 and back.dtype == np.float32


def test_to_unit_keeps_the_files_own_scale() -> None:
    assert to_unit(np.array([[0, 255]], np.uint8)).tolist() == [[0.0, 1.0]]
    assert to_unit(np.array([0.2, 0.4], np.float32)).tolist() == pytest.approx([0.2, 0.4])
    wide = to_unit(np.arange(1000, dtype=np.uint16).reshape(10, 100))  # 16-bit: robust min/max
    assert wide.min() == 0.0 and wide.max() == 1.0 and wide.dtype == np.float32


def test_scale_scan_per_channel_over_the_whole_volume() -> None:
    rng = np.random.default_rng(0)
    vol = np.zeros((2, 3, 8, 8), np.float32)  # C x Z x H x W
    vol[0, :, 2:6, 2:6] = rng.uniform(100, 900, (3, 4, 4))
    vol[1, :, 2:6, 2:6] = rng.uniform(-5, 5, (3, 4, 4))
    unit = scale_scan(vol, "unit")
    assert unit.shape == vol.shape and unit.min() >= 0 and unit.max() <= 1
    assert unit[0].max() == 1.0 and unit[1].max() == 1.0  # each channel on its own
    z = scale_scan(vol, "zscore")
    brain = vol[0] != 0
    assert abs(z[0][brain].mean()) < 1e-5 and abs(z[0][brain].std() - 1) < 1e-4
    assert np.array_equal(scale_scan(unit, "unit"), unit)  # already on [0, 1]: kept
    with pytest.raises(ValueError, match="unknown intensity scale"):
        scale_scan(vol, "minmax")


def test_robust_scale_of_some_rows_uses_the_whole_volume() -> None:
    rng = np.random.default_rng(0)
    vol = rng.normal(100, 30, (6, 8, 9)).astype(np.float32)
    vol[0] *= 5  # one slice far brighter: the percentiles differ from the rows' own
    with_bad = vol.copy()
    with_bad[1, 2, 3], with_bad[4, 0, 0], with_bad[5, 1, 1] = np.nan, np.inf, -np.inf
    for a in (vol, with_bad, np.full((3, 4, 4), 7.0, np.float32), np.full((2, 3), np.nan)):
        for rows in ([1], [0, 1], list(range(len(a)))):
            whole = robust_scale(a, 1, 99)
            np.testing.assert_array_equal(robust_scale(a, 1, 99, rows=rows), whole[rows])
    assert robust_scale(vol).dtype == np.float32 and robust_scale(vol, rows=[1]).shape == (1, 8, 9)
