"""Mixup / cutmix of classification batches: what is mixed, and the soft targets match it."""

from __future__ import annotations

import pytest
import torch

from braintumor.data.mixing import BatchMixer, paste_box


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    # Image i is the constant i + 1, so every pixel says which image it came from.
    images = torch.arange(1, 5, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 1, 16, 16)
    return images.contiguous(), torch.tensor([0, 1, 2, 3])


def test_off_returns_the_batch_and_one_hot_targets() -> None:
    images, labels = _batch()
    out, soft = BatchMixer(4)(images, labels)
    assert out is images
    assert torch.equal(soft, torch.eye(4))


def test_mixup_blends_each_image_with_its_partner_by_the_target_weight() -> None:
    torch.manual_seed(0)
    images, labels = _batch()
    out, soft = BatchMixer(4, mixup_alpha=0.4)(images, labels)
    lam = soft[0, 0].item()
    assert 0.0 < lam < 1.0 and soft[0, 3].item() == pytest.approx(1 - lam)
    # Image 0 (value 1) mixed with the reversed batch's image 0 (value 4).
    assert torch.allclose(out[0], torch.full_like(out[0], lam * 1 + (1 - lam) * 4))
    assert torch.allclose(soft.sum(1), torch.ones(4))
    assert torch.equal(images, _batch()[0])  # the input batch is not modified


def test_cutmix_target_weight_is_the_area_each_image_keeps() -> None:
    torch.manual_seed(1)
    images, labels = _batch()
    for _ in range(20):
        out, soft = BatchMixer(4, cutmix_alpha=1.0)(images, labels)
        own = (out[1] == 2).float().mean().item()  # image 1 (value 2), partner image 2
        assert soft[1, 1].item() == pytest.approx(own)
        assert soft[1, 2].item() == pytest.approx(1 - own)
        assert set(torch.unique(out[1]).tolist()) <= {2.0, 3.0}  # pixels moved, not blended


def test_box_is_clipped_at_the_border_and_lam_follows() -> None:
    a, b = torch.zeros(1, 1, 10, 10), torch.ones(1, 1, 10, 10)
    for seed in range(30):
        torch.manual_seed(seed)
        out, lam = paste_box(a, b, 0.5)
        assert 1 - out.mean().item() == pytest.approx(lam)
        assert 0.5 <= lam <= 1.0  # clipping only shrinks the pasted box


def test_both_alphas_use_both_kinds() -> None:
    torch.manual_seed(0)
    images, labels = _batch()
    kinds = set()
    for _ in range(40):
        out, _ = BatchMixer(4, mixup_alpha=0.4, cutmix_alpha=1.0)(images, labels)
        blended = not set(torch.unique(out[0]).tolist()) <= {1.0, 4.0}
        kinds.add("mixup" if blended else "cutmix")
    assert kinds == {"mixup", "cutmix"}
