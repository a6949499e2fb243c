"""U-Net (Ronneberger et al., 2015) and the encoder-decoder skeleton its variants share.

``UNet`` is built from parts in ``blocks.py``: a stem block at full resolution,
``depth`` down steps (the last one is the bottleneck), ``depth`` :class:`UpBlock`
decoder steps and a 1x1 head. Channels double at every level from ``n_filters``.
The variants (``unet_transposed``, ``improved_unet``, ``attention_unet``,
``resunet``) pass other blocks, up-sampling, skip merging or gates.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import Tensor, nn

from braintumor.models.blocks import BlockFn, DoubleConv, UpBlock, check_divisible
from braintumor.models.registry import register_model

DownFn = Callable[[int, int], nn.Module]


def pool_then(block: BlockFn) -> DownFn:
    """Down step = 2x2 max-pooling followed by ``block``."""
    return lambda c_in, c_out: nn.Sequential(nn.MaxPool2d(2), block(c_in, c_out))


class UNet(nn.Module):
    """Generic U-Net: B x in_channels x H x W -> logits B x num_classes x H x W.

    Args:
        in_channels: input channels (MRI sequences).
        num_classes: output channels (one logit map per mask channel).
        n_filters: channels of the first level; doubled at every level.
        depth: number of down-sampling steps; H and W must be divisible by ``2**depth``.
        block: builder ``(in, out) -> module`` for the stem and decoder blocks.
        down: builder for an encoder down step; default max-pool then ``block``.
        bottleneck: builder for the deepest down step; default ``down``.
        up: ``"bilinear"`` or ``"transpose"``.
        merge: ``"concat"`` or ``"add"`` skip connections.
        gate: attention gates on the skips.
        name: used in error messages.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        n_filters: int = 16,
        depth: int = 4,
        *,
        block: BlockFn = DoubleConv,
        down: DownFn | None = None,
        bottleneck: DownFn | None = None,
        up: str = "bilinear",
        merge: str = "concat",
        gate: bool = False,
        name: str = "unet",
    ) -> None:
        super().__init__()
        if depth < 1 or n_filters < 1:
            raise ValueError(f"{name}: depth and n_filters must be >= 1")
        self.name, self.depth = name, depth
        ch = [n_filters * 2**i for i in range(depth + 1)]
        down = down or pool_then(block)
        bottleneck = bottleneck or down
        self.stem = block(in_channels, ch[0])
        self.downs = nn.ModuleList(
            (bottleneck if i == depth - 1 else down)(ch[i], ch[i + 1]) for i in range(depth)
        )
        self.ups = nn.ModuleList(
            UpBlock(ch[i + 1], ch[i], ch[i], block, mode=up, merge=merge, gate=gate)
            for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(ch[0], num_classes, 1)

    def forward_with_attention(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits and the attention maps of the gated skips (coarse to fine; empty if none)."""
        check_divisible(x, 2**self.depth, self.name)
        skips = [self.stem(x)]
        for step in self.downs:
            skips.append(step(skips[-1]))
        y = skips.pop()
        maps: list[Tensor] = []
        for step in self.ups:
            y, alpha = step(y, skips.pop())
            if alpha is not None:
                maps.append(alpha)
        return self.head(y), maps

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_attention(x)[0]


@register_model("segmentation")
def unet(
    in_channels: int = 1,
    num_classes: int = 1,
    n_filters: int = 16,
    depth: int = 4,
    batch_norm: bool = False,
) -> UNet:
    """U-Net: double 3x3 conv blocks, bilinear up-sampling, concatenated skips."""
    return UNet(
        in_channels, num_classes, n_filters, depth, block=partial(DoubleConv, batch_norm=batch_norm)
    )
