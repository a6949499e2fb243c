"""Building blocks shared by the segmentation networks.

The U-Net variants in this folder are one encoder-decoder skeleton (``unet.UNet``)
composed from these parts; they differ only by the block, the up-sampling, the way a
skip connection is merged, and whether an attention gate filters the skip.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from braintumor.errors import ConfigError

BlockFn = Callable[[int, int], nn.Module]


def check_divisible(x: Tensor, factor: int, model: str) -> None:
    """Raise a one-line error when the input cannot be halved ``log2(factor)`` times."""
    # Shape checks are skipped while tracing/compiling (ONNX export, torch.compile): sizes
    # may be symbolic there, and the eager forward has already validated the geometry.
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h % factor or w % factor:
        hp, wp = -(-h // factor) * factor, -(-w // factor) * factor
        raise ConfigError(
            f"{model}: height and width must be divisible by {factor}, got {h}x{w}; "
            f"pad to ({hp}, {wp}) or set data.image_size to a multiple of {factor}"
        )


class DoubleConv(nn.Sequential):
    """Two 3x3 'same' convolutions, each followed by (BatchNorm and) ReLU."""

    def __init__(self, in_ch: int, out_ch: int, batch_norm: bool = False) -> None:
        layers: list[nn.Module] = []
        for c_in in (in_ch, out_ch):
            # A bias right before BatchNorm is redundant (BN subtracts the mean).
            layers.append(nn.Conv2d(c_in, out_ch, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_ch))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class SeparableConv2d(nn.Sequential):
    """Depthwise ``k x k`` convolution then pointwise 1x1: far fewer weights than a full conv."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 7) -> None:
        super().__init__(
            nn.Conv2d(in_ch, in_ch, kernel_size, padding=kernel_size // 2, groups=in_ch),
            nn.Conv2d(in_ch, out_ch, 1),
        )


class SeparableConvBNReLU(nn.Sequential):
    """Separable convolution + BatchNorm + ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 7) -> None:
        super().__init__(
            SeparableConv2d(in_ch, out_ch, kernel_size),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class SeparableDoubleConv(nn.Sequential):
    """Two separable ``7x7`` conv + BN + ReLU units (the improved U-Net's block)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 7) -> None:
        super().__init__(
            SeparableConvBNReLU(in_ch, out_ch, kernel_size),
            SeparableConvBNReLU(out_ch, out_ch, kernel_size),
        )


class InvertedBottleneck(nn.Module):
    """ConvNeXt-style residual unit: depthwise 7x7, BN, 1x1 expand x4, GELU, 1x1 project."""

    def __init__(self, channels: int, expansion: int = 4, kernel_size: int = 7) -> None:
        super().__init__()
        hidden = channels * expansion
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels),
            nn.BatchNorm2d(channels),
            nn.Conv2d(channels, hidden, 1),
            nn.GELU(),
            nn.Conv2d(hidden, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResidualBlock(nn.Module):
    """Pre-activation residual unit (BN-ReLU-conv x2) with a projected shortcut (ResUNet).

    ``stride=2`` halves the resolution inside the unit, as in Zhang et al. (2018),
    instead of a separate pooling layer.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.body(x)


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al., 2018) that re-weights a skip connection.

    The gating signal ``g`` (decoder features, already up-sampled to the skip's size)
    and the skip ``x`` are projected to ``inter_ch`` channels, added, passed through
    ReLU, a 1x1 conv and a sigmoid: ``alpha`` (B x 1 x h x w) in [0, 1] scales ``x``.
    """

    def __init__(self, gate_ch: int, skip_ch: int, inter_ch: int | None = None) -> None:
        super().__init__()
        inter = inter_ch or max(1, skip_ch // 2)
        self.w_g = nn.Sequential(nn.Conv2d(gate_ch, inter, 1, bias=False), nn.BatchNorm2d(inter))
        self.w_x = nn.Sequential(nn.Conv2d(skip_ch, inter, 1, bias=False), nn.BatchNorm2d(inter))
        self.psi = nn.Conv2d(inter, 1, 1)

    def forward(self, g: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        alpha = torch.sigmoid(self.psi(F.relu(self.w_g(g) + self.w_x(x))))
        return x * alpha, alpha


class UpBlock(nn.Module):
    """Decoder step: up-sample, (gate the skip), merge with the skip, then a block.

    Args:
        in_ch: channels of the coarser decoder input.
        skip_ch: channels of the skip connection (and of the up-sampled input when
            ``mode="transpose"`` or ``merge="add"``).
        out_ch: output channels.
        block: builder ``(in, out) -> module`` applied after merging.
        mode: ``"bilinear"`` (parameter-free) or ``"transpose"`` (ConvTranspose2d).
        merge: ``"concat"`` (classic U-Net) or ``"add"`` (additive skip, fewer weights).
        gate: put an :class:`AttentionGate` on the skip.
    """

    def __init__(
        self,
        in_ch: int,
        skip_ch: int,
        out_ch: int,
        block: BlockFn,
        mode: str = "bilinear",
        merge: str = "concat",
        gate: bool = False,
    ) -> None:
        super().__init__()
        if mode not in ("bilinear", "transpose") or merge not in ("concat", "add"):
            raise ValueError(f"bad UpBlock mode={mode!r} merge={merge!r}")
        self.merge = merge
        if mode == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(in_ch, skip_ch, 2, stride=2)
            up_ch = skip_ch
        elif merge == "add":  # addition needs matching channels: project after up-sampling
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(in_ch, skip_ch, 1)
            )
            up_ch = skip_ch
        else:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear")
            up_ch = in_ch
        self.gate = AttentionGate(up_ch, skip_ch) if gate else None
        self.block = block(up_ch + skip_ch if merge == "concat" else skip_ch, out_ch)

    def forward(self, x: Tensor, skip: Tensor) -> tuple[Tensor, Tensor | None]:
        x = self.up(x)
        alpha = None
        if self.gate is not None:
            skip, alpha = self.gate(x, skip)
        x = torch.cat([x, skip], dim=1) if self.merge == "concat" else x + skip
        return self.block(x), alpha
