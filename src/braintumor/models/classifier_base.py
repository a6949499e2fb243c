"""The surface every classifier shares (timm style).

``forward(x) = forward_head(forward_features(x))``. CNNs return a B x C x h x w
feature map from ``forward_features``; the ViT returns its B x N x D tokens.
Freeze-then-unfreeze works on parameter-name prefixes: ``head_prefixes`` name
the classifier head, ``trainable_when_frozen`` the parameters that keep training
while the backbone is frozen (the head, plus e.g. the last conv block for
``vgg16_ft``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import torch
from torch import nn

from braintumor.errors import ConfigError


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    # "features.2" must not match "features.24": compare whole dotted components.
    return any(name == p or name.startswith(p + ".") for p in prefixes)


class Classifier(nn.Module):
    """Base class: subclasses build layers and implement the four hooks below."""

    #: Parameter-name prefixes of the classifier head.
    head_prefixes: tuple[str, ...] = ("head",)
    #: Name of the first convolution (its weight is adapted to 1/4 input channels
    #: when loading RGB weights).
    first_conv: str = ""
    #: Standard ImageNet weights for this architecture, if there are any.
    imagenet_url: str | None = None
    #: Smallest input side the layer stack accepts (checked for a clear error).
    min_size: int = 1

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        if in_channels < 1 or num_classes < 1:
            raise ConfigError(
                f"{type(self).__name__}: in_channels ({in_channels}) and num_classes "
                f"({num_classes}) must be positive"
            )
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.trainable_when_frozen: tuple[str, ...] = self.head_prefixes

    # -- to implement -------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, feats: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:
        raise NotImplementedError

    def cam_layer(self) -> nn.Module:
        """The module whose 4D output Grad-CAM hooks (the last conv block)."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        """Raise a one-line error for inputs the layer stack cannot take."""
        if torch.jit.is_tracing():  # ONNX export: shapes are fixed by the example input
            return
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"{type(self).__name__} expects B x {self.in_channels} x H x W input, got "
                f"{tuple(x.shape)}; set data.channels={self.in_channels} or rebuild the model"
            )
        if min(x.shape[-2:]) < self.min_size:
            raise ConfigError(
                f"{type(self).__name__} needs images of at least {self.min_size} px, got "
                f"{tuple(x.shape[-2:])}; set data.image_size={self.min_size} or larger"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.forward_head(self.forward_features(x))

    def head_parameters(self) -> Iterator[nn.Parameter]:
        return (p for n, p in self.named_parameters() if _matches(n, self.head_prefixes))

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        return (p for n, p in self.named_parameters() if not _matches(n, self.head_prefixes))

    def freeze_backbone(self, frozen: bool = True) -> list[str]:
        """Freeze (or unfreeze) everything outside ``trainable_when_frozen``.

        Only ``requires_grad`` changes; BatchNorm statistics still update in
        train mode (call ``.eval()`` on those layers if that is not wanted).

        Returns:
            Names of the parameters that remain trainable.
        """
        trainable = []
        for n, p in self.named_parameters():
            keep = not frozen or _matches(n, self.trainable_when_frozen)
            p.requires_grad_(keep)
            if keep:
                trainable.append(n)
        return trainable


class SequentialCNN(Classifier):
    """A CNN laid out as ``features`` -> pool -> flatten -> an MLP ending in a ``Linear``.

    Subclasses build ``self.features`` and the two modules named by ``pool_name`` and
    ``head_name`` (torchvision's AlexNet/VGG call them ``avgpool`` and ``classifier``).
    """

    pool_name: str = "pool"
    head_name: str = "head"

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # type: ignore[no-any-return]

    def forward_head(self, feats: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        head: nn.Sequential = getattr(self, self.head_name)
        x = torch.flatten(getattr(self, self.pool_name)(feats), 1)
        return head[:-1](x) if pre_logits else head(x)

    def reset_classifier(self, num_classes: int) -> None:
        head: nn.Sequential = getattr(self, self.head_name)
        head[-1] = replace_linear(head[-1], num_classes)
        self.num_classes = num_classes


def replace_linear(old: nn.Linear, num_classes: int) -> nn.Linear:
    """A fresh ``Linear`` with ``old``'s input width and device/dtype."""
    w = old.weight
    return nn.Linear(old.in_features, num_classes, device=w.device, dtype=w.dtype)


M = TypeVar("M", bound=Classifier)


def finish(model: M, pretrained: str | None) -> M:
    """Load ``pretrained`` weights (a path or ``"imagenet"``) when given."""
    if pretrained:
        from braintumor.models.pretrained import load_pretrained

        load_pretrained(model, pretrained)
    return model
