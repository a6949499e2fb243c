"""The tumour mask as an auxiliary training target of a classifier (``model.aux_mask``).

A classifier trained on "tumour / no tumour" is told only *whether* a slice holds a
tumour; a segmenter is told *where*, and LGG's segmenter reads tumour presence off
its mask far better than a classifier of the same budget (BENCHMARKS.md). The
auxiliary head gives the classifier the "where" during training only: a small
convolutional head on the classifier's last convolutional map (``cam_layer()``, the
map Grad-CAM explains) predicts, per cell of that map, whether the cell holds tumour
pixels (the mask max-pooled to the map's size, so a 3-pixel tumour still marks its
cell). The loss becomes ``classification loss + aux_mask * BCE(cells)``.

The head lives in the training module, beside the network and not inside it: the
saved weights, the model card, inference, ONNX export and Grad-CAM are those of the
plain classifier.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from braintumor.errors import ConfigError


def _feature_layer(model: nn.Module) -> nn.Module:
    cam = getattr(model, "cam_layer", None)
    if cam is None:
        raise ConfigError(
            f"model.aux_mask needs a classifier with a convolutional feature map; "
            f"{type(model).__name__} names none (cam_layer); set model.aux_mask=0"
        )
    try:
        return cam()
    except NotImplementedError:
        raise ConfigError(
            f"model.aux_mask: {type(model).__name__} has no convolutional feature map; "
            "use a CNN classifier or set model.aux_mask=0"
        ) from None


class AuxMaskHead(nn.Module):
    """Per-cell tumour logits from the classifier's last convolutional map.

    Args:
        model: the classifier; a forward hook on its ``cam_layer()`` keeps the map of
            the latest forward pass.
        in_channels, image_size: an input shape the model takes (one dry forward pass
            finds the map's width).
        weight: the auxiliary loss weight (``model.aux_mask``).
    """

    def __init__(self, model: nn.Module, in_channels: int, image_size: int, weight: float):
        super().__init__()
        self.weight = float(weight)
        self._features: Tensor | None = None
        layer = _feature_layer(model)
        # Not a registered module: the hook must not make the network a submodule twice.
        self._handle = layer.register_forward_hook(self._keep)
        channels = self._probe(model, in_channels, image_size)
        hidden = max(16, channels // 4)
        self.head = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, 1),
        )

    def _keep(self, module: nn.Module, args: Any, output: Any) -> None:
        self._features = output if isinstance(output, Tensor) and output.ndim == 4 else None

    def _probe(self, model: nn.Module, in_channels: int, image_size: int) -> int:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, in_channels, image_size, image_size))
        model.train(was_training)
        feats, self._features = self._features, None
        if feats is None:
            raise ConfigError(
                f"model.aux_mask: the feature map of {type(model).__name__} is not a "
                "B x C x h x w tensor; use a CNN classifier or set model.aux_mask=0"
            )
        return int(feats.shape[1])

    def loss(self, mask: Tensor) -> Tensor:
        """BCE of the cells of the latest forward pass against ``mask`` (B x K x H x W)."""
        feats, self._features = self._features, None
        if feats is None:
            raise RuntimeError("AuxMaskHead.loss called before a forward pass of the model")
        logits = self.head(feats)
        target = cell_targets(mask, logits.shape[-2:]).to(logits.dtype)
        return self.weight * F.binary_cross_entropy_with_logits(logits, target)

    def clear(self) -> None:
        """Forget the kept map (validation / inference passes)."""
        self._features = None

    def remove(self) -> None:
        self._handle.remove()


def cell_targets(mask: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """1 where a cell of a ``size`` grid holds any tumour pixel of ``mask`` (any channel)."""
    tumour = (mask > 0).amax(dim=1, keepdim=True).float()
    return F.adaptive_max_pool2d(tumour, tuple(size))


__all__ = ["AuxMaskHead", "cell_targets"]
