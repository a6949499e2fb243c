"""Flip test-time augmentation for segmenters and classifiers.

The model sees each image as it is and mirrored left-right (the only flip training
uses: brains are roughly left-right symmetric); each output is mirrored back onto the
input's pixels before the probabilities are averaged. Averaging probabilities, not
logits, keeps the result a probability whatever the model's calibration.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# Spatial axis flipped: the last (width) axis of B x C x H x W.
FLIP_DIMS: tuple[tuple[int, ...], ...] = ((), (-1,))


def flip_tta(
    forward: Callable[[Tensor], Tensor],
    x: Tensor,
    dims: tuple[tuple[int, ...], ...] = FLIP_DIMS,
    spatial: bool = True,
) -> Tensor:
    """Mean of ``forward`` over flipped copies of ``x`` (B x C x H x W).

    Args:
        forward: images -> probabilities (B x K x H x W for segmentation, B x K for
            classification).
        dims: the flips to average (``()`` is the image as it is).
        spatial: the outputs are maps and must be flipped back (segmentation);
            False for class probabilities, which do not move.
    """
    total: Tensor | None = None
    for d in dims:
        out = forward(torch.flip(x, d) if d else x)
        if spatial and d:
            out = torch.flip(out, d)
        total = out if total is None else total + out
    assert total is not None
    return total / len(dims)
