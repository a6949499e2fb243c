"""``vit``: a Vision Transformer (Dosovitskiy et al. 2021) small enough to train on a CPU.

Images are cut into 16 x 16 patches by a strided convolution, a class token and
learned position embeddings are added, and ``depth`` pre-norm encoder layers
(multi-head self-attention + GELU MLP) follow; the class token, after a final
LayerNorm, feeds a linear head. Position embeddings are learned for
``image_size``; other sizes (multiples of the patch size) interpolate them
bicubically, as timm does.

Explanations: ``attention_maps(x)`` returns every layer's softmax attention for
attention rollout, and ``cam_layer()`` is an identity hook point that shows the
patch tokens entering the last layer as a B x D x h x w grid, so Grad-CAM works
as for the CNNs (the class token reads those tokens in the last layer).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from braintumor.errors import ConfigError
from braintumor.models.classifier_base import Classifier, finish, replace_linear
from braintumor.models.registry import register_model


class Attention(nn.Module):
    """Multi-head self-attention that also returns its attention weights."""

    def __init__(self, dim: int, num_heads: int, attn_drop: float, proj_drop: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"vit: embed_dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # B x heads x N x head_dim
        # Explicit softmax (not the fused kernel) because rollout needs the weights.
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        out = (self.attn_drop(attn) @ v).transpose(1, 2).reshape(b, n, d)
        return self.proj_drop(self.proj(out)), attn


class Block(nn.Module):
    """Pre-norm encoder layer: x + MSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float, dropout: float, attn_dropout: float
    ) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, attn_dropout, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, dim), nn.Dropout(dropout),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, attn = self.attn(self.norm1(x))
        x = x + y
        return x + self.mlp(self.norm2(x)), attn


class VisionTransformer(Classifier):
    """Patch embedding, class token, position embeddings, encoder, LayerNorm + linear head."""

    head_prefixes = ("head",)
    first_conv = "patch_embed"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        image_size: int = 128,
        patch_size: int = 16,
        embed_dim: int = 192,
        depth: int = 10,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
        attn_dropout: float = 0.0,
    ) -> None:
        super().__init__(in_channels, num_classes)
        if image_size % patch_size:
            raise ConfigError(
                f"vit: image_size {image_size} must be a multiple of patch_size {patch_size}"
            )
        self.patch_size = patch_size
        self.min_size = patch_size
        self.grid = image_size // patch_size
        self.patch_embed = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid**2, embed_dim))
        self.pos_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, dropout, attn_dropout) for _ in range(depth)
        )
        self.token_grid = nn.Identity()  # Grad-CAM hook point, see module docstring
        self.norm = nn.LayerNorm(embed_dim)
        self.num_features = embed_dim
        self.head = nn.Linear(embed_dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        if torch.jit.is_tracing():
            return
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ConfigError(
                f"vit needs height and width divisible by {self.patch_size}, got {h}x{w}; "
                f"set data.image_size to a multiple of {self.patch_size}"
            )

    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        if (h, w) == (self.grid, self.grid):
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        d = patch_pos.shape[-1]
        grid = patch_pos.reshape(1, self.grid, self.grid, d).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        return torch.cat([cls_pos, grid.flatten(2).transpose(1, 2)], dim=1)

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        p = self.patch_embed(x)  # B x D x h x w
        b, d, h, w = p.shape
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), p.flatten(2).transpose(1, 2)], 1)
        tokens = self.pos_drop(tokens + self._pos_embed(h, w))
        maps = []
        for i, blk in enumerate(self.blocks):
            if i == len(self.blocks) - 1:  # route patch tokens through the Grad-CAM hook
                grid = self.token_grid(tokens[:, 1:].transpose(1, 2).reshape(b, d, h, w))
                tokens = torch.cat([tokens[:, :1], grid.flatten(2).transpose(1, 2)], 1)
            tokens, attn = blk(tokens)
            maps.append(attn)
        return self.norm(tokens), maps

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """B x C x H x W image -> B x (1 + patches) x D normalised tokens."""
        return self._encode(x)[0]

    def forward_head(self, feats: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        cls = feats[:, 0]
        return cls if pre_logits else self.head(cls)

    def attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer attention weights, each B x heads x N x N (N = 1 + patches; 0 = class)."""
        self.check_input(x)
        return self._encode(x)[1]

    def reset_classifier(self, num_classes: int) -> None:
        self.head = replace_linear(self.head, num_classes)
        self.num_classes = num_classes

    def cam_layer(self) -> nn.Module:
        return self.token_grid


@register_model("classification")
def vit(
    in_channels: int = 1, num_classes: int = 2, pretrained: str | None = None, **kw: Any
) -> VisionTransformer:
    """Vision Transformer, patch 16, 10 layers, dim 192, 3 heads (image_size kwarg, default 128)."""
    return finish(VisionTransformer(in_channels, num_classes, **kw), pretrained)
