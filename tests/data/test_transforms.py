"""Augmentation keeps masks binary and aligned with their image."""

from __future__ import annotations

import pytest
import torch

from braintumor.data.transforms import build_transforms
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
