"""``vgg16`` and ``vgg16_ft``: VGG-16 (configuration D) in torchvision's exact layout.

Parameter names and shapes match ``torchvision.models.vgg16`` (features /
avgpool / classifier), so the standard ImageNet weights load directly; the
adaptive 7 x 7 average pool lets it take any image of at least 32 px. ReLUs are
not in-place so that Grad-CAM hooks see clean activations (no parameter changes).

The two registered names build the same network and differ only in what stays
trainable while the backbone is frozen: ``vgg16`` trains only the classifier,
``vgg16_ft`` also fine-tunes the last convolutional block (conv5_1..conv5_3).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from braintumor.models.classifier_base import SequentialCNN, finish
from braintumor.models.registry import register_model

# Configuration "D" of Simonyan & Zisserman: conv widths, "M" = 2x2 max-pool.
_CFG_D: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                           512, 512, 512, "M", 512, 512, 512, "M"]  # fmt: skip
# Indices in ``features`` of the last block's three convolutions (conv5_1..3).
LAST_BLOCK = ("features.24", "features.26", "features.28")


def _make_features(in_channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = in_channels
    for v in _CFG_D:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(cin, int(v), kernel_size=3, padding=1), nn.ReLU()]
            cin = int(v)
    return nn.Sequential(*layers)


class VGG16(SequentialCNN):
    """Thirteen 3x3 convolutions, three FC layers (138 M parameters at 1000 classes)."""

    pool_name = "avgpool"
    head_name = "classifier"

    head_prefixes = ("classifier",)
    first_conv = "features.0"
    imagenet_url = "https://download.pytorch.org/models/vgg16-397923af.pth"
    min_size = 32  # five 2x2 max-pools

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1000,
        dropout: float = 0.5,
        finetune_last_block: bool = False,
    ) -> None:
        super().__init__(in_channels, num_classes)
        self.features = _make_features(in_channels)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.num_features = 512 * 7 * 7
        self.classifier = nn.Sequential(
            nn.Linear(self.num_features, 4096),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        if finetune_last_block:
            self.trainable_when_frozen = self.head_prefixes + LAST_BLOCK
        self._init_weights()

    def _init_weights(self) -> None:
        # Same scheme as torchvision, so a from-scratch run matches its recipe.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def cam_layer(self) -> nn.Module:
        return self.features[29]  # ReLU after conv5_3, before the last max-pool


@register_model("classification")
def vgg16(
    in_channels: int = 3, num_classes: int = 1000, pretrained: str | None = None, **kw: Any
) -> VGG16:
    """VGG-16 (torchvision layout); freezing the backbone trains only the classifier."""
    return finish(VGG16(in_channels, num_classes, **kw), pretrained)


@register_model("classification")
def vgg16_ft(
    in_channels: int = 3, num_classes: int = 1000, pretrained: str | None = None, **kw: Any
) -> VGG16:
    """VGG-16 whose freeze schedule also fine-tunes the last conv block (conv5_1..3)."""
    kw.setdefault("finetune_last_block", True)
    return finish(VGG16(in_channels, num_classes, **kw), pretrained)
