"""Training levers on the data side: channel replacement, intensity range, oversampling,
and LGG per-volume scaling."""

from __future__ import annotations

import numpy as np
import torch

from braintumor.data.intensity import apply_volume_scale, volume_scale
from braintumor.data.transforms import ReplaceWithReference, build_transforms
from braintumor.engine.data import tumor_sampler


def test_channel_replacement_copies_flair_into_the_other_native_channels() -> None:
    image = torch.stack([torch.full((2, 2), float(v)) for v in (1, 2, 3, 4)])
    always = ReplaceWithReference(prob=1.0, reference=1, n_native=3)
    out = always({"image": image})["image"]
    assert [float(c[0, 0]) for c in out] == [2, 2, 2, 4]  # channel 3 (a neighbour) kept
    assert float(image[0, 0, 0]) == 1  # the input is not modified in place
    never = ReplaceWithReference(prob=0.0, reference=1, n_native=3)
    assert torch.equal(never({"image": image})["image"], image)


def test_intensity_augmentation_reaches_dark_scans() -> None:
    aug = build_transforms("segmentation", True, intensity=True)
    assert aug is not None
    item = {"image": torch.full((3, 16, 16), 0.5), "mask": torch.zeros(1, 16, 16)}
    means = []
    for seed in range(60):
        torch.manual_seed(seed)
        aug._pid = None  # reseed from torch's seed, as a new worker would
        means.append(float(aug(dict(item))["image"].mean()))
    assert min(means) < 0.25  # some samples at least 2x darker than the input


def test_tumor_sampler_draws_tumor_slices_more_often() -> None:
    has = np.array([True] + [False] * 9)
    torch.manual_seed(0)
    drawn = list(tumor_sampler(has, factor=9.0))
    assert len(drawn) == 10
    weights = tumor_sampler(has, factor=9.0).weights
    assert float(weights[0]) == 9.0 and float(weights[1:].max()) == 1.0


def test_volume_scale_is_a_per_channel_percentile_of_the_brain() -> None:
    vol = np.zeros((2, 3, 4, 4), np.float32)
    vol[:, 0, :2] = 0.2  # dark channel, half of the pixels are background
    vol[:, 1, :2] = 0.8
    s = volume_scale(vol)
    assert np.allclose(s, [0.2, 0.8, 1.0])  # the empty channel is left unscaled
    slice_ = vol[0]
    assert np.allclose(apply_volume_scale(slice_, s)[:2, 0, 0], [1.0, 1.0])
    assert np.allclose(volume_scale(slice_), s)  # one slice: its own percentiles
