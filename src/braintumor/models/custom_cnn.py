"""``custom_cnn``: an AlexNet-derived CNN with BatchNorm and Mish, sized for 128 px MRI.

The brain-tumour literature's "custom CNN" keeps AlexNet's idea (a large first
kernel, then 5x5 and 3x3 convolutions with growing width) but adds BatchNorm,
the smooth Mish activation and a max-pool after every convolution. Kernel
sizes and strides here are chosen for 128 px single-channel slices:

    conv 11x11/4 64  -> 32 px, pool -> 16
    conv  5x5/1 128  -> 16 px, pool ->  8
    conv  3x3/1 256  ->  8 px, pool ->  4
    conv  3x3/1 256  ->  4 px, pool ->  2

then adaptive average pooling to 2 x 2 (the identity at 128 px, so other sizes
work too) and three FC layers 1024 -> 512 -> 256 -> classes with Mish and
dropout; about 1.8 M parameters. AlexNet's stride-4 first layer keeps one epoch on the 5,708-image
Nickparvar set at 128 px to about two minutes on a 2-core laptop CPU (a stride-2
variant was 3x slower per epoch for the same budget; pass ``stages=`` to change).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from braintumor.models.classifier_base import SequentialCNN, finish
from braintumor.models.registry import register_model

# (out_channels, kernel, stride) for the four conv stages.
_STAGES = ((64, 11, 4), (128, 5, 1), (256, 3, 1), (256, 3, 1))


class CustomCNN(SequentialCNN):
    """Four conv + BN + Mish + max-pool stages, three FC layers."""

    head_prefixes = ("head",)
    first_conv = "features.0.0"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        stages: tuple[tuple[int, int, int], ...] = _STAGES,
        pool_size: int = 2,
        hidden: tuple[int, int] = (512, 256),
        dropout: float = 0.5,
    ) -> None:
        super().__init__(in_channels, num_classes)
        layers: list[nn.Module] = []
        cin = in_channels
        for cout, k, s in stages:
            layers += [
                nn.Sequential(
                    nn.Conv2d(cin, cout, k, stride=s, padding=k // 2, bias=False),
                    nn.BatchNorm2d(cout),
                    nn.Mish(),
                ),
                nn.MaxPool2d(2, ceil_mode=True),  # ceil: small inputs keep a 1 px map
            ]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.num_features = cin * pool_size * pool_size
        h1, h2 = hidden
        self.head = nn.Sequential(
            nn.Linear(self.num_features, h1),
            nn.Mish(),
            nn.Dropout(dropout),
            nn.Linear(h1, h2),
            nn.Mish(),
            nn.Dropout(dropout),
            nn.Linear(h2, num_classes),
        )

    def cam_layer(self) -> nn.Module:
        return self.features[-2]  # last conv + BN + Mish, before its pool


@register_model("classification")
def custom_cnn(
    in_channels: int = 1, num_classes: int = 2, pretrained: str | None = None, **kw: Any
) -> CustomCNN:
    """AlexNet-derived CNN for 128 px MRI: 4 x (conv, BN, Mish, max-pool), 3 FC with dropout."""
    return finish(CustomCNN(in_channels, num_classes, **kw), pretrained)
