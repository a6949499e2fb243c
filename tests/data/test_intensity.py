"""Intensity scales: unit, z-score inside the brain, and conversion between them."""

from __future__ import annotations

import numpy as np

from braintumor.data.intensity import rescale_intensity, zscore_brain


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
