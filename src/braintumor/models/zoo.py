"""Imports every model module so that its builders register."""

from __future__ import annotations

# Segmentation models.
from braintumor.models import (  # noqa: E402, F401
    attention_unet,
    improved_unet,
    monai_nets,
    resunet,
    unet,
    unet_transposed,
)

# Classification models.
from braintumor.models import alexnet, custom_cnn, resnet, simple_cnn, vgg, vit  # noqa: F401
