"""Attention U-Net: the improved U-Net with additive attention gates on every skip.

Each gate (Oktay et al., 2018) computes a map ``alpha`` in [0, 1] from the decoder
features and the skip, and scales the skip by it, so the decoder only receives
encoder features where the coarser context says the target is. The maps are
returned by ``forward(x, return_attention=True)`` for visualisation.
"""

from __future__ import annotations

from torch import Tensor

from braintumor.models.improved_unet import improved_unet_parts
from braintumor.models.registry import register_model
from braintumor.models.unet import UNet


class AttentionUNet(UNet):
    """Gated U-Net; ``forward(x, return_attention=True)`` also returns the gate maps."""

    def forward(  # type: ignore[override]
        self, x: Tensor, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Logits, or ``(logits, maps)``: one B x 1 x h x w map per skip, coarse to fine."""
        logits, maps = self.forward_with_attention(x)
        return (logits, maps) if return_attention else logits


@register_model("segmentation")
def attention_unet(
    in_channels: int = 1, num_classes: int = 1, n_filters: int = 16, depth: int = 4
) -> AttentionUNet:
    """Attention U-Net: improved U-Net plus attention gates on the skip connections."""
    return AttentionUNet(
        in_channels,
        num_classes,
        n_filters,
        depth,
        gate=True,
        name="attention_unet",
        **improved_unet_parts(),
    )
