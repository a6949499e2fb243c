"""U-Net with transposed-convolution up-sampling, as in Buda et al. (2019) for LGG.

Five convolutional levels on the way down (four encoder blocks plus the bottleneck,
i.e. four 2x2 poolings), each a double 3x3 conv with BatchNorm; the decoder
up-samples with learned 2x2 ``ConvTranspose2d`` and concatenates the skip.
Buda et al. use ``n_filters=32`` (7.8 M parameters); the default here is 16.
"""

from __future__ import annotations

from functools import partial

from braintumor.models.blocks import DoubleConv
from braintumor.models.registry import register_model
from braintumor.models.unet import UNet


@register_model("segmentation")
def unet_transposed(
    in_channels: int = 1, num_classes: int = 1, n_filters: int = 16, depth: int = 4
) -> UNet:
    """U-Net with BatchNorm and ConvTranspose2d up-sampling (Buda et al. 2019)."""
    return UNet(
        in_channels,
        num_classes,
        n_filters,
        depth,
        block=partial(DoubleConv, batch_norm=True),
        up="transpose",
        name="unet_transposed",
    )
