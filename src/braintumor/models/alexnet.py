"""``alexnet``: AlexNet in torchvision's exact layout ("one weird trick" variant).

Parameter names and shapes match ``torchvision.models.alexnet`` (features /
avgpool / classifier), so the standard ImageNet weights load directly. The
adaptive 6 x 6 average pool lets it take any image of at least 63 px. ReLUs are
not in-place (torchvision's are) so that Grad-CAM hooks see clean activations;
that changes no parameter.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from braintumor.models.classifier_base import SequentialCNN, finish
from braintumor.models.registry import register_model


class AlexNet(SequentialCNN):
    """Five convolutions, three FC layers (57 M parameters at 1000 classes)."""

    pool_name = "avgpool"
    head_name = "classifier"

    head_prefixes = ("classifier",)
    first_conv = "features.0"
    imagenet_url = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
    min_size = 63  # smaller inputs shrink to nothing before the last max-pool

    def __init__(self, in_channels: int = 3, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__(in_channels, num_classes)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.num_features = 256 * 6 * 6
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(self.num_features, 4096),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Linear(4096, num_classes),
        )

    def cam_layer(self) -> nn.Module:
        return self.features[11]  # ReLU after the last convolution


@register_model("classification")
def alexnet(
    in_channels: int = 3, num_classes: int = 1000, pretrained: str | None = None, **kw: Any
) -> AlexNet:
    """AlexNet (torchvision layout; pretrained="imagenet" loads the ImageNet weights)."""
    return finish(AlexNet(in_channels, num_classes, **kw), pretrained)
