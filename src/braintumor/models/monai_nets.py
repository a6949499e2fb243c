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


def _segresnet_ds(in_channels: int, num_classes: int, n_filters: int) -> nn.Module:
    """SegResNet whose training forward also returns 1/2- and 1/4-resolution logits."""
    from monai.networks.blocks.segresnet_block import get_conv_layer
    from monai.networks.layers.factories import Act, Norm
    from monai.networks.nets import SegResNet

    class SegResNetDeepSupervision(SegResNet):
        """Deep supervision (nnU-Net style): a 1x1 head (norm, ReLU, conv, like
        ``conv_final``) on every decoder level but the last. In ``eval()`` mode the
        forward is exactly SegResNet's: one tensor, the heads unused."""

        def __init__(self) -> None:
            super().__init__(
                spatial_dims=2,
                init_filters=n_filters,
                in_channels=in_channels,
                out_channels=num_classes,
            )
            n_up = len(self.blocks_up)
            self.aux_heads = nn.ModuleList(
                nn.Sequential(
                    Norm[Norm.GROUP, 2](num_groups=8, num_channels=c),
                    Act[Act.RELU](inplace=True),
                    get_conv_layer(2, c, num_classes, kernel_size=1, bias=True),
                )
                for c in (n_filters * 2 ** (n_up - i - 1) for i in range(n_up - 1))
            )

        def forward(self, x: Tensor) -> Tensor | list[Tensor]:  # type: ignore[override]
            if not self.training:
                return super().forward(x)
            x, down_x = self.encode(x)
            down_x.reverse()
            aux: list[Tensor] = []
            for i, (up, upl) in enumerate(zip(self.up_samples, self.up_layers, strict=True)):
                x = upl(up(x) + down_x[i + 1])
                if i < len(self.aux_heads):
                    aux.append(self.aux_heads[i](x))
            # Full resolution first, then coarser: [1, 1/2, 1/4].
            return [self.conv_final(x), *aux[::-1]]

    return SegResNetDeepSupervision()


@register_model("segmentation")
def segresnet(
    in_channels: int = 1, num_classes: int = 1, n_filters: int = 8, deep_supervision: bool = False
) -> DivisibleInput:
    """MONAI SegResNet (2D): residual encoder with GroupNorm (Myronenko 2018), light decoder.

    ``deep_supervision``: in training the network also returns logits at 1/2 and 1/4
    resolution, each trained against the mask resized to it (the engine's
    :class:`~braintumor.losses.DeepSupervisionLoss`); inference is unchanged.
    """
    if n_filters % 8:
        raise ConfigError(
            f"segresnet: n_filters must be a multiple of 8 (GroupNorm of 8 groups), got {n_filters}"
        )
    from monai.networks.nets import SegResNet  # lazy: importing MONAI costs seconds

    if deep_supervision:
        net = _segresnet_ds(in_channels, num_classes, n_filters)
    else:
        net = SegResNet(
            spatial_dims=2,
            init_filters=n_filters,
            in_channels=in_channels,
            out_channels=num_classes,
        )
    # blocks_down=(1, 2, 2, 4): three stride-2 steps.
    return DivisibleInput(net, 8, "segresnet")
