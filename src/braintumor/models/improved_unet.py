"""Improved U-Net: a lighter U-Net built from depthwise-separable 7x7 convolutions.

Changes from the plain U-Net, each to cut weights or widen the receptive field:
- every block is two depthwise-separable 7x7 conv + BatchNorm + ReLU units;
- the bottleneck is a separable conv followed by a ConvNeXt-style inverted
  bottleneck (depthwise 7x7, 1x1 expansion x4, GELU, 1x1 projection, residual);
- skips are added (after a 1x1 projection of the up-sampled features) instead of
  concatenated, so decoder blocks see half the channels.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from braintumor.models.blocks import InvertedBottleneck, SeparableConvBNReLU, SeparableDoubleConv
from braintumor.models.registry import register_model
from braintumor.models.unet import UNet, pool_then


def _bottleneck(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(
        nn.MaxPool2d(2), SeparableConvBNReLU(c_in, c_out), InvertedBottleneck(c_out)
    )


def improved_unet_parts() -> dict[str, Any]:
    """Keyword arguments of :class:`UNet` for an improved U-Net (attention_unet reuses them)."""
    return {
        "block": SeparableDoubleConv,
        "down": pool_then(SeparableDoubleConv),
        "bottleneck": _bottleneck,
        "up": "bilinear",
        "merge": "add",
    }


@register_model("segmentation")
def improved_unet(
    in_channels: int = 1, num_classes: int = 1, n_filters: int = 16, depth: int = 4
) -> UNet:
    """Improved U-Net: separable 7x7 convs, BatchNorm, inverted bottleneck, additive skips."""
    return UNet(
        in_channels, num_classes, n_filters, depth, name="improved_unet", **improved_unet_parts()
    )
