"""``simple_cnn``: a small three-stage baseline CNN.

Three stages of 5x5 stride-2 convolution (64, 128, 256 filters) + BatchNorm +
ReLU + 2x2 max-pool, then FC 256 -> 64 -> classes. Unlike the fixed-size
original we global-average-pool the last feature map before the FC layers, so
the same weights take any image size (each stage divides the side by 4; the
pools use ``ceil_mode`` so that maps of side 1 survive at small inputs).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from braintumor.models.classifier_base import SequentialCNN, finish
from braintumor.models.registry import register_model


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=5, stride=2, padding=2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class SimpleCNN(SequentialCNN):
    """Three conv stages, global average pooling, two FC layers."""

    head_prefixes = ("head",)
    first_conv = "features.0.0"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        widths: tuple[int, int, int] = (64, 128, 256),
        hidden: int = 64,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(in_channels, num_classes)
        layers: list[nn.Module] = []
        cin = in_channels
        for w in widths:
            layers += [_stage(cin, w), nn.MaxPool2d(2, ceil_mode=True)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = cin
        self.head = nn.Sequential(
            nn.Linear(cin, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
        )

    def cam_layer(self) -> nn.Module:
        return self.features[-2]  # last conv stage, before its pool


@register_model("classification")
def simple_cnn(
    in_channels: int = 1, num_classes: int = 2, pretrained: str | None = None, **kw: Any
) -> SimpleCNN:
    """Small baseline CNN: 3 x (5x5/2 conv, BN, ReLU, max-pool), GAP, FC 256-64-classes."""
    return finish(SimpleCNN(in_channels, num_classes, **kw), pretrained)
