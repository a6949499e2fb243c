"""The torch-native affine and noise equal MONAI's transforms and keep the random state."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.data import set_track_meta
from monai.transforms import Affine

from braintumor.data.fast_augment import RandAffine2d, RandGaussianNoise
from braintumor.data.transforms import ReplaceWithReference, build_transforms


@pytest.mark.parametrize("shape", [(64, 64), (48, 80)])
@pytest.mark.parametrize("angle,scales", [(0.2, (1.05, 0.93)), (-0.26, (0.9, 1.1))])
def test_grid_equals_monai_affine(shape: tuple[int, int], angle: float, scales: tuple) -> None:
    torch.manual_seed(0)
    image = F.avg_pool2d(torch.rand(1, 3, *shape), 5, 1, 2)[0]
    mask = (torch.rand(1, *shape) > 0.7).float()
    set_track_meta(False)
    try:
        ref = Affine(
            rotate_params=angle, scale_params=scales, padding_mode="zeros", image_only=True
        )
        want_img = ref(image, mode="bilinear")
        want_mask = ref(mask, mode="nearest")
    finally:
        set_track_meta(True)
    grid = RandAffine2d.grid(*shape, angle, scales)
    got_img = F.grid_sample(image[None], grid, mode="bilinear", align_corners=False)[0]
    got_mask = F.grid_sample(mask[None], grid, mode="nearest", align_corners=False)[0]
    assert torch.allclose(got_img, torch.as_tensor(want_img), atol=1e-4)
    assert torch.equal(got_mask, torch.as_tensor(want_mask))


def test_affine_moves_image_and_mask_together_and_keeps_dtype() -> None:
    aff = RandAffine2d(
        ["image", "mask"], 1.0, math.radians(15), (0.1, 0.1), ("bilinear", "nearest")
    )
    aff.set_random_state(seed=3)
    mask = torch.zeros(1, 64, 64, dtype=torch.uint8)
    mask[0, 10:30, 12:40] = 2  # an integer label map stays integer and keeps its labels
    out = aff({"image": mask.float(), "mask": mask, "label": 7})
    assert out["mask"].dtype == torch.uint8 and set(out["mask"].unique().tolist()) <= {0, 2}
    assert not torch.equal(out["mask"], mask)  # it moved
    disagree = ((out["image"] > 1.0) != (out["mask"] > 0)).float().mean()
    assert disagree < 0.02  # one grid for both keys: only the rim of the box may differ
    assert out["label"] == 7


def test_affine_prob_zero_and_missing_mask() -> None:
    aff = RandAffine2d(["image", "mask"], 0.0, 0.3, (0.1, 0.1), ("bilinear", "nearest"))
    item = {"image": torch.rand(2, 16, 16)}
    assert torch.equal(aff(item)["image"], item["image"])
    aff.prob = 1.0
    out = aff(item)
    assert "mask" not in out and out["image"].shape == (2, 16, 16)
    with pytest.raises(ValueError, match="mode"):
        RandAffine2d(["image", "mask"], 1.0, 0.3, (0.1, 0.1), ("bilinear",))


def test_affine_parameters_follow_monai_ranges() -> None:
    aff = RandAffine2d(["image"], 1.0, 0.25, (0.1, 0.2), ("bilinear",))
    aff.set_random_state(seed=0)
    draws = [aff.randomize() for _ in range(400)]
    angles = np.array([d[0] for d in draws if d])
    scales = np.array([d[1] for d in draws if d])
    assert angles.min() >= -0.25 and angles.max() <= 0.25 and angles.std() > 0.1
    assert scales[:, 0].min() >= 0.9 and scales[:, 0].max() <= 1.1
    assert scales[:, 1].min() >= 0.8 and scales[:, 1].max() <= 1.2 and scales[:, 1].min() < 0.85


def test_noise_std_is_drawn_up_to_std_and_seeded() -> None:
    noise = RandGaussianNoise("image", 1.0, 0.03)
    noise.set_random_state(seed=1)
    base = torch.zeros(1, 64, 64)
    sigmas = [float(noise({"image": base})["image"].std()) for _ in range(50)]
    assert max(sigmas) <= 0.033 and min(sigmas) < 0.01 and np.mean(sigmas) > 0.008
    a = RandGaussianNoise("image", 1.0, 0.03).set_random_state(seed=5)
    b = RandGaussianNoise("image", 1.0, 0.03).set_random_state(seed=5)
    assert torch.equal(a({"image": base})["image"], b({"image": base})["image"])
    off = RandGaussianNoise("image", 0.0, 0.03)
    assert torch.equal(off({"image": base})["image"], base)


def test_resume_state_covers_every_random_transform() -> None:
    aug = build_transforms("segmentation", True, intensity=True, channel_dropout=0.5, n_native=3)
    assert aug is not None
    kinds = {type(t) for t in aug.pipeline.transforms}
    assert {RandAffine2d, RandGaussianNoise, ReplaceWithReference} <= kinds
    owners = [t.R for t in aug.pipeline.transforms if hasattr(t, "R")]
    assert len(aug._random_states()) >= len(owners)
    item = {"image": torch.rand(3, 32, 32), "mask": (torch.rand(1, 32, 32) > 0.5).float()}
    aug(dict(item))  # seeds the pipeline
    state = aug.state_dict()
    first = [aug(dict(item)) for _ in range(4)]
    aug.load_state_dict(state)
    again = [aug(dict(item)) for _ in range(4)]
    for x, y in zip(first, again, strict=True):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask"], y["mask"])
