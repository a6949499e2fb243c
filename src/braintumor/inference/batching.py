"""Geometry between a user's slices and the network's input, one chunk at a time.

The model sees each image padded to a square and resized
(:func:`~braintumor.data.preprocess.prepare_sample`); its output is resized back and
the padding cut off. Slices of one shape (a volume, a folder of same-size images) go
through both steps as one batch: ``F.interpolate`` applies the same kernel to every
plane, so the pixels equal those of one slice at a time, in one call instead of many.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from braintumor.data.preprocess import pad_to_square, to_channels


def padding_box(height: int, width: int) -> tuple[int, int, int, int]:
    """Where an ``height x width`` image lies inside its padded square: (top, left, h, w).

    Found by padding an image of ones with the very function training uses, so the
    inversion can never disagree with the forward geometry.
    """
    padded, _ = pad_to_square(np.ones((1, height, width), dtype=np.float32))
    rows = np.flatnonzero(padded[0].any(axis=1))
    cols = np.flatnonzero(padded[0].any(axis=0))
    return int(rows[0]), int(cols[0]), height, width


def to_original_grid(probs: torch.Tensor, height: int, width: int) -> np.ndarray:
    """K x S x S probabilities -> K x height x width (undo resize, then the padding)."""
    side = max(height, width)
    x = probs[None].float()
    if x.shape[-1] != side:
        x = F.interpolate(
            x, size=(side, side), mode="bilinear", align_corners=False, antialias=side < x.shape[-1]
        )
    top, left, h, w = padding_box(height, width)
    return x[0, :, top : top + h, left : left + w].clamp(0, 1).cpu().numpy()


def prepare_batch(batch: np.ndarray, image_size: int, channels: int) -> np.ndarray:
    """N x C x H x W slices -> N x channels x S x S, as ``prepare_sample`` without crop
    does per slice (pad to square, antialiased bilinear resize, channel conversion),
    rounded through float16 as SliceDataset stores training images."""
    batch = batch.astype(np.float32, copy=False)
    _, _, h, w = batch.shape
    side = max(h, w)
    if h != w:
        top, left, _, _ = padding_box(h, w)
        batch = np.pad(batch, ((0, 0), (0, 0), (top, side - h - top), (left, side - w - left)))
    if side != image_size:
        with torch.no_grad():
            t = torch.from_numpy(np.ascontiguousarray(batch))
            size = (image_size, image_size)
            t = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True)
        batch = t.numpy()
    if batch.shape[1] != channels:
        batch = np.stack([to_channels(im, channels) for im in batch])
    return batch.astype(np.float16).astype(np.float32)


def restore_batch(probs: torch.Tensor, height: int, width: int) -> np.ndarray:
    """N x K x S x S probabilities -> N x K x height x width (:func:`to_original_grid`
    for a whole chunk of one shape)."""
    side = max(height, width)
    x = probs.float()
    if x.shape[-1] != side:
        x = F.interpolate(
            x, size=(side, side), mode="bilinear", align_corners=False, antialias=side < x.shape[-1]
        )
    top, left, h, w = padding_box(height, width)
    return x[:, :, top : top + h, left : left + w].clamp(0, 1).cpu().numpy()


__all__ = ["padding_box", "prepare_batch", "restore_batch", "to_original_grid"]
