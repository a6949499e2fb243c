"""MONAI reference networks (``BasicUNet``, ``SegResNet``) registered as 2D peers.

They are wrapped only to give them the same input check as the in-house U-Nets:
MONAI would otherwise pad or crop silently when H or W is not a multiple of the
total down-sampling factor.
"""

from __future__ import annotations

from torch import Tensor, nn

from braintumor.errors import ConfigError
from braintumor.models.blocks import check_divisible
from braintumor.models.registry import register_model


class DivisibleInput(nn.Module):
    """Runs ``net`` after checking that H and W are multiples of ``factor``."""

    def __init__(self, net: nn.Module, factor: int, name: str) -> None:
        super().__init__()
        self.net, self.factor, self.name = net, factor, name

    def forward(self, x: Tensor) -> Tensor:
        check_divisible(x, self.factor, self.name)
        return self.net(x)


@register_model("segmentation")
def basic_unet(in_channels: int = 1, num_classes: int = 1, n_filters: int = 32) -> DivisibleInput:
    """MONAI BasicUNet (2D): instance norm, LeakyReLU, transposed-conv up-sampling."""
    from monai.networks.nets import BasicUNet  # lazy: importing MONAI costs seconds

    n = n_filters
    # MONAI's default feature widths are (32, 32, 64, 128, 256, 32); scaled by n_filters.
    net = BasicUNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=num_classes,
        features=(n, n, 2 * n, 4 * n, 8 * n, n),
    )
    return DivisibleInput(net, 16, "basic_unet")


@register_model("segmentation")
def segresnet(in_channels: int = 1, num_classes: int = 1, n_filters: int = 8) -> DivisibleInput:
    """MONAI SegResNet (2D): residual encoder with GroupNorm (Myronenko 2018), light decoder."""
    if n_filters % 8:
        raise ConfigError(
            f"segresnet: n_filters must be a multiple of 8 (GroupNorm of 8 groups), got {n_filters}"
        )
    from monai.networks.nets import SegResNet  # lazy: importing MONAI costs seconds

    net = SegResNet(
        spatial_dims=2, init_filters=n_filters, in_channels=in_channels, out_channels=num_classes
    )
    # blocks_down=(1, 2, 2, 4): three stride-2 steps.
    return DivisibleInput(net, 8, "segresnet")
