"""Imports every model module so that its builders register."""

from __future__ import annotations

# Segmentation models.
# Classification models.
from braintumor.models import (  # noqa: E402, F401  # noqa: F401
    alexnet,
    attention_unet,
    custom_cnn,
    improved_unet,
    monai_nets,
    resnet,
    resunet,
    simple_cnn,
    unet,
    unet_transposed,
    vgg,
    vit,
)
