"""BatchNorm folded into the convolution before it, for inference.

In eval mode a ``BatchNorm2d`` is a per-channel affine map, so a ``Conv2d`` followed by
one equals a single convolution with rescaled weights and a shifted bias
(``torch.nn.utils.fusion.fuse_conv_bn_eval``): one pass over the feature map instead of
two. :func:`fold_batchnorm` makes a folded copy of a network (the original is left as
it is: training, Grad-CAM hooks and checkpoints use it); the inference runtime
(:mod:`braintumor.inference.backends`) offers the copy as a candidate and keeps it only
where it agrees with eager fp32 within the tolerance and measures faster.

Only pairs that are provably a chain are folded: a ``Conv2d`` immediately followed by a
``BatchNorm2d`` with running statistics in the same ``nn.Sequential`` (how the project's
blocks, ``DoubleConv``, ``custom_cnn``'s stages and ResNet's down-sampling shortcuts are
built). Anything else is left unfolded.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (
        type(conv) is nn.Conv2d
        and type(bn) is nn.BatchNorm2d
        and bn.running_mean is not None
        and bn.running_var is not None
        and conv.out_channels == bn.num_features
    )


def foldable_pairs(model: nn.Module) -> int:
    """How many conv + BatchNorm pairs :func:`fold_batchnorm` would fold."""
    count = 0
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            kids = list(module)
            count += sum(_foldable(a, b) for a, b in zip(kids, kids[1:], strict=False))
    return count


def fold_batchnorm(model: nn.Module) -> nn.Module | None:
    """An eval-mode copy of ``model`` with every foldable BatchNorm folded into its
    convolution (and replaced by ``nn.Identity``); None when there is none to fold."""
    if not foldable_pairs(model):
        return None
    folded = copy.deepcopy(model).eval()
    for module in list(folded.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            conv, bn = module[i], module[i + 1]
            if _foldable(conv, bn):
                module[i] = fuse_conv_bn_eval(conv, bn)
                module[i + 1] = nn.Identity()
    return folded


__all__ = ["fold_batchnorm", "foldable_pairs"]
