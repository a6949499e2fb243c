"""``resnet50``: ResNet-50 (v1.5) in torchvision's exact layout.

Parameter and buffer names match ``torchvision.models.resnet50`` (conv1, bn1,
layer1..layer4 of Bottleneck blocks with ``downsample.0/.1``, fc), so the
standard ImageNet weights load directly. As in torchvision (v1.5) the stride of
a down-sampling block sits on its 3x3 convolution. Global average pooling makes
it size-agnostic. ReLUs are not in-place so that Grad-CAM hooks see clean
activations (no parameter changes).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from braintumor.models.classifier_base import Classifier, finish, replace_linear
from braintumor.models.registry import register_model


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (carries the stride) -> 1x1 expand (x4), plus the shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU()
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(y + identity)


class ResNet50(Classifier):
    """Stem + four stages of 3/4/6/3 Bottleneck blocks (25.6 M parameters at 1000 classes)."""

    head_prefixes = ("fc",)
    first_conv = "conv1"
    imagenet_url = "https://download.pytorch.org/models/resnet50-0676ba61.pth"

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 1000,
        layers: tuple[int, int, int, int] = (3, 4, 6, 3),
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__(in_channels, num_classes)
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.inplanes = 64
        self.layer1 = self._make_layer(64, layers[0], stride=1)
        self.layer2 = self._make_layer(128, layers[1], stride=2)
        self.layer3 = self._make_layer(256, layers[2], stride=2)
        self.layer4 = self._make_layer(512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = self.inplanes
        self.fc = nn.Linear(self.inplanes, num_classes)
        self._init_weights(zero_init_residual)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        stage = [Bottleneck(self.inplanes, planes, stride)]
        self.inplanes = planes * Bottleneck.expansion
        stage += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def _init_weights(self, zero_init_residual: bool) -> None:
        # torchvision's scheme; zero-initialised last BN makes each block start as identity.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward_head(self, feats: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(feats), 1)
        return x if pre_logits else self.fc(x)

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = replace_linear(self.fc, num_classes)
        self.num_classes = num_classes

    def cam_layer(self) -> nn.Module:
        return self.layer4


@register_model("classification")
def resnet50(
    in_channels: int = 3, num_classes: int = 1000, pretrained: str | None = None, **kw: Any
) -> ResNet50:
    """ResNet-50 v1.5 (torchvision layout; pretrained="imagenet" loads the ImageNet weights)."""
    return finish(ResNet50(in_channels, num_classes, **kw), pretrained)
