"""Deep residual U-Net (Zhang, Liu & Wang, 2018).

Every block, in the encoder, the bridge (bottleneck) and the decoder, is a
pre-activation residual unit; the encoder down-samples with a stride-2 first
convolution inside the unit rather than by pooling. The decoder up-samples
bilinearly and concatenates the skip, as in U-Net.
"""

from __future__ import annotations

from functools import partial

from braintumor.models.blocks import ResidualBlock
from braintumor.models.registry import register_model
from braintumor.models.unet import UNet


@register_model("segmentation")
def resunet(
    in_channels: int = 1, num_classes: int = 1, n_filters: int = 16, depth: int = 4
) -> UNet:
    """ResUNet: residual units in encoder, bridge and decoder; strided down-sampling."""
    return UNet(
        in_channels,
        num_classes,
        n_filters,
        depth,
        block=ResidualBlock,
        down=partial(ResidualBlock, stride=2),
        name="resunet",
    )
