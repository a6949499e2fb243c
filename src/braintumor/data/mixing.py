"""Batch mixing for classification: mixup (Zhang et al. 2018) and cutmix (Yun et al. 2019).

Applied by the engine to each training batch when ``data.mixup_alpha`` or
``data.cutmix_alpha`` is above 0 (timm's ``Mixup`` is the model): every image is
mixed with the image at the same place in the reversed batch, with a weight
``lam ~ Beta(alpha, alpha)`` drawn per batch, and the class target becomes the same
mixture of the two one-hot labels (the cross-entropy loss takes class probabilities;
label smoothing and class weights still apply). Mixup blends whole images; cutmix
pastes a box of the partner image covering ``1 - lam`` of the area (clipped at the
border, ``lam`` then set to the area actually kept). With both alphas above 0 each
batch uses one of the two, with even odds. Validation and test batches are never mixed.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F


class BatchMixer:
    """``mixer(images, labels) -> (mixed images, soft targets B x K)``.

    Args:
        num_classes: K, the width of the soft targets.
        mixup_alpha: Beta parameter of mixup (0: off).
        cutmix_alpha: Beta parameter of cutmix (0: off).
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0):
        self.num_classes = num_classes
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)

    @property
    def active(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def __call__(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        onehot = F.one_hot(labels.long(), self.num_classes).to(torch.float32)
        if not self.active or images.shape[0] < 2:
            return images, onehot
        cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or bool(torch.rand(()) < 0.5))
        alpha = self.cutmix_alpha if cutmix else self.mixup_alpha
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        partner = images.flip(0)
        if cutmix:
            images, lam = paste_box(images, partner, lam)
        else:
            images = lam * images + (1.0 - lam) * partner
        return images, lam * onehot + (1.0 - lam) * onehot.flip(0)


def paste_box(images: Tensor, partner: Tensor, lam: float) -> tuple[Tensor, float]:
    """``images`` with a random box of ``partner`` covering ~``1 - lam`` of the area.

    Returns the images and the share of each image's area that is still its own.
    """
    h, w = images.shape[-2:]
    cut = math.sqrt(1.0 - lam)
    bh, bw = round(h * cut), round(w * cut)
    cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
    y0, y1 = max(cy - bh // 2, 0), min(cy + bh - bh // 2, h)
    x0, x1 = max(cx - bw // 2, 0), min(cx + bw - bw // 2, w)
    out = images.clone()
    out[..., y0:y1, x0:x1] = partner[..., y0:y1, x0:x1]
    return out, 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
