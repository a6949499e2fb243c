"""Binary masks to score: logits binarised, BraTS labels turned into nested regions."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from braintumor.metrics.counts import ArrayLike


def logits_to_masks(logits: Tensor, mode: str = "binary", threshold: float = 0.5) -> Tensor:
    """Binarise logits B x C x H x W into uint8 masks B x K x H x W.

    ``binary``/``multilabel``: sigmoid > threshold per channel (K = C).
    ``multiclass``: arg-max over channels, background channel 0 dropped (K = C - 1).
    """
    if mode == "multiclass":
        idx = logits.argmax(1)
        return (
            torch.nn.functional.one_hot(idx, logits.shape[1]).movedim(-1, 1)[:, 1:].to(torch.uint8)
        )
    return (logits.sigmoid() > threshold).to(torch.uint8)


def brats_regions(labels_mask: ArrayLike) -> ArrayLike:
    """Convert NCR/ED/ET channel masks (``... x 3 x H x W``) to the nested WT/TC/ET regions.

    WT (whole tumour) = NCR | ED | ET, TC (tumour core) = NCR | ET, ET = ET.
    Returns the same type and dtype as the input.
    """
    if labels_mask.shape[-3] != 3:
        raise ValueError(
            f"brats_regions expects 3 channels (NCR, ED, ET), got shape {tuple(labels_mask.shape)}"
        )
    if isinstance(labels_mask, Tensor):
        ncr, ed, et = (labels_mask.select(-3, i) != 0 for i in range(3))
        return torch.stack([ncr | ed | et, ncr | et, et], dim=-3).to(labels_mask.dtype)
    m = np.asarray(labels_mask) != 0
    ncr, ed, et = m[..., 0, :, :], m[..., 1, :, :], m[..., 2, :, :]
    return np.stack([ncr | ed | et, ncr | et, et], axis=-3).astype(np.asarray(labels_mask).dtype)
