"""Augmentation keeps masks binary and aligned with their image."""

from __future__ import annotations

import math

import pytest
import torch

from braintumor.data.fast_augment import RandAffine2d
from braintumor.data.transforms import Augment, build_transforms
from braintumor.errors import ConfigError


def _square_item(size: int = 64) -> dict:
    mask = torch.zeros(1, size, size)
    mask[0, 20:44, 14:34] = 1.0  # off-centre, so flips and rotations move it
    image = torch.cat([mask.clone(), torch.full((1, size, size), 0.3)])
    return {"image": image, "mask": mask, "label": torch.tensor(1), "patient_id": "p", "path": "x"}


def test_eval_has_no_transform_and_task_is_checked() -> None:
    assert build_transforms("classification", train=False) is None
    assert build_transforms("segmentation", train=False) is None
    with pytest.raises(ConfigError, match="valid"):
        build_transforms("detection", train=True)


def test_mask_stays_binary_and_aligned() -> None:
    torch.manual_seed(0)
    aug = build_transforms("segmentation", train=True)
    assert aug is not None
    moved = 0
    item = _square_item()
    for _ in range(25):
        out = aug(dict(item))
        img, mask = out["image"], out["mask"]
        assert type(img) is torch.Tensor and type(mask) is torch.Tensor  # no MetaTensor
        assert img.shape == (2, 64, 64) and mask.shape == (1, 64, 64)
        assert img.dtype == torch.float32
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        bright = img[0] > 0.5
        inter = (bright & (mask[0] > 0)).sum().item()
        union = (bright | (mask[0] > 0)).sum().item()
        assert inter / union > 0.85  # the square and its mask moved together
        moved += not torch.equal(mask, item["mask"])
        assert out["label"] is item["label"] and out["path"] == "x"
    assert moved >= 5  # it does augment


def test_classification_items_without_mask() -> None:
    aug = build_transforms("classification", train=True)
    assert aug is not None
    item = _square_item()
    del item["mask"]
    out = aug(item)
    assert "mask" not in out and out["image"].shape == (2, 64, 64)


def test_thread_count_is_restored() -> None:
    aug = build_transforms("segmentation", train=True)
    assert aug is not None
    before = torch.get_num_threads()
    aug(_square_item())
    assert torch.get_num_threads() == before


def _affine(aug: Augment | None) -> RandAffine2d:
    assert aug is not None
    return next(t for t in aug.pipeline.transforms if isinstance(t, RandAffine2d))


def test_spatial_strength_reaches_the_affine_and_is_checked() -> None:
    aug = build_transforms("segmentation", True, rotate_degrees=25, scale_range=0.25)
    affine = _affine(aug)
    assert affine.rotate_range == pytest.approx(math.radians(25))
    assert affine.scale_range == (0.25, 0.25)
    default = _affine(build_transforms("segmentation", True))
    assert default.rotate_range == pytest.approx(math.radians(15))
    assert default.scale_range == (0.1, 0.1)
    with pytest.raises(ConfigError, match="scale_range"):
        build_transforms("segmentation", True, scale_range=1.5)
    with pytest.raises(ConfigError, match="rotate_degrees"):
        build_transforms("segmentation", True, rotate_degrees=-5)


def test_zero_strength_leaves_geometry_alone() -> None:
    """rotate 0 and zoom 0: the mask only ever moves by the left-right flip."""
    torch.manual_seed(1)
    aug = build_transforms("segmentation", True, rotate_degrees=0, scale_range=0)
    item = _square_item()
    flipped = item["mask"].flip(-1)
    for _ in range(20):
        mask = aug(dict(item))["mask"]
        assert torch.equal(mask, item["mask"]) or torch.equal(mask, flipped)
