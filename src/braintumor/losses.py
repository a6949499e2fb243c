"""Loss registry: ``create_loss(name, mode=..., class_weights=..., label_smoothing=...)``.

Every loss is an ``nn.Module`` called as ``loss(logits, target)``; models return
logits, the activation lives here.

Classification: ``cross_entropy`` takes class indices (B,) or class probabilities
(B x K) and supports ``class_weights`` and ``label_smoothing`` exactly like
:class:`torch.nn.CrossEntropyLoss`.

Segmentation (logits B x C x H x W, target float 0/1 B x K x H x W), by ``mode``:

- ``binary`` (C = 1) and ``multilabel`` (C >= 1, channels may overlap, e.g. the
  nested BraTS regions WT/TC/ET): a sigmoid per channel; target has K = C channels.
- ``multiclass`` (mutually exclusive labels, e.g. NCR/ED/ET): a softmax over the
  C channels, of which channel 0 is *background*. The target may be one-hot with
  all C channels (background first), the K = C - 1 foreground channels only (the
  background channel is then added as "no foreground label set"), or a long
  index map B x H x W. Overlap losses (dice, tversky, focal_tversky) average the
  foreground channels only, because the background channel would dominate them;
  pixel-wise losses (bce = categorical cross-entropy here, focal, mse) use all C.

Pixel-wise losses are computed per image and channel (B x C), then averaged
over channels (weighted by ``class_weights``, one value per logit channel) and
images. Overlap losses (dice, tversky, focal_tversky) pool their soft tp/fp/fn
over the whole batch per channel ("batch Dice", MONAI's ``batch=True``, as in
Buda et al.'s LGG code): computed per image, the many slices without tumor
(two thirds of LGG) make "predict nothing" a deep local minimum, and a U-Net
trained with per-image Dice + BCE on LGG stayed there for four epochs. They use
a smoothing constant of 1 so that an all-empty batch costs nothing. ``label_smoothing`` applies
to the cross-entropy terms only; other losses reject it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from braintumor.errors import ConfigError
from braintumor.registry import Registry

MODES = ("binary", "multilabel", "multiclass")
LOSSES: Registry[type[nn.Module]] = Registry("loss")
SMOOTH = 1.0  # overlap smoothing: empty truth + empty prediction -> loss 0


class CrossEntropy(nn.Module):
    """Softmax cross-entropy on class indices or probabilities (classification)."""

    name = "cross_entropy"
    uses_label_smoothing = True

    def __init__(
        self,
        mode: str = "multiclass",
        class_weights: Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.ce = nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.ce(logits, target)


class SegLoss(nn.Module):
    """Base class: activation, target conversion and the (image, channel) reduction.

    Subclasses implement ``terms(logits, probs, target) -> B x C``.
    """

    overlap = False  # averaged over foreground channels only in multiclass mode
    channel_sum = False  # multiclass pixel-wise terms add up over classes (cross-entropy)
    uses_label_smoothing = False

    def __init__(
        self,
        mode: str = "binary",
        class_weights: Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.mode, self.eps = mode, label_smoothing
        self.register_buffer("weights", class_weights, persistent=False)

    def prepare(self, logits: Tensor, target: Tensor) -> Tensor:
        """Float target with the same shape as ``logits`` (one-hot in multiclass mode)."""
        c = logits.shape[1]
        if self.mode == "multiclass":
            if c < 2:
                raise ConfigError(
                    "multiclass loss needs >= 2 output channels (background + classes)"
                )
            if target.ndim == logits.ndim - 1:  # index map
                return F.one_hot(target.long(), c).movedim(-1, 1).to(logits.dtype)
            if target.shape[1] == c - 1:  # foreground channels only: background = none set
                bg = 1 - target.amax(dim=1, keepdim=True).clamp(0, 1)
                target = torch.cat([bg, target], dim=1)
            elif target.shape[1] == c and bool((target.sum(1) - 1).abs().amax() > 1e-3):
                raise ConfigError(
                    f"multiclass target with {c} channels must be one-hot, background first; "
                    f"give the {c - 1} foreground channels or an index map instead"
                )
        elif self.mode == "binary" and c != 1:
            raise ConfigError(
                f"binary loss expects 1 output channel, got {c}; use mode='multilabel'"
            )
        if target.ndim == logits.ndim - 1 and c == 1:
            target = target.unsqueeze(1)
        if target.shape != logits.shape:
            raise ValueError(
                f"loss target shape {tuple(target.shape)} does not match "
                f"logits {tuple(logits.shape)}"
            )
        return target.to(logits.dtype)

    def probs(self, logits: Tensor) -> Tensor:
        return logits.softmax(1) if self.mode == "multiclass" else logits.sigmoid()

    def smoothed(self, target: Tensor) -> Tensor:
        k = target.shape[1] if self.mode == "multiclass" else 2
        return target * (1 - self.eps) + self.eps / k if self.eps else target

    def terms(self, logits: Tensor, probs: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        logits = logits.float()  # sums over many pixels are too coarse in fp16/bf16
        target = self.prepare(logits, target)
        if logits.ndim == 2:  # classification logits B x K: one "pixel" per sample
            logits, target = logits[..., None], target[..., None]
        per = self.terms(logits, self.probs(logits), target)  # B x C
        w = torch.ones(per.shape[1], device=per.device, dtype=per.dtype)
        if self.weights is not None:
            if self.weights.numel() != per.shape[1]:
                raise ConfigError(
                    f"class_weights has {self.weights.numel()} values but the model "
                    f"outputs {per.shape[1]} channels"
                )
            w = self.weights.to(per)
        if self.mode == "multiclass" and self.overlap:
            per, w = per[:, 1:], w[1:]
        if self.mode == "multiclass" and self.channel_sum:
            return (per * w).sum(1).mean()
        return ((per * w).sum(1) / w.sum()).mean()


def _sums(probs: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Soft tp, fp, fn per channel, pooled over the batch and all pixels (1 x C)."""
    dims = (0, *range(2, probs.ndim))
    tp = (probs * target).sum(dims)[None]
    return tp, (probs * (1 - target)).sum(dims)[None], ((1 - probs) * target).sum(dims)[None]


def _spatial_mean(x: Tensor) -> Tensor:
    return x.flatten(2).mean(-1)


@LOSSES.register("bce")
class BCE(SegLoss):
    """Binary cross-entropy per channel (categorical cross-entropy in multiclass mode)."""

    channel_sum = True
    uses_label_smoothing = True

    def terms(self, logits: Tensor, probs: Tensor, target: Tensor) -> Tensor:
        t = self.smoothed(target)
        if self.mode == "multiclass":
            return _spatial_mean(-t * logits.log_softmax(1))
        return _spatial_mean(F.binary_cross_entropy_with_logits(logits, t, reduction="none"))


@LOSSES.register("dice")
class Dice(SegLoss):
    """Soft Dice loss, 1 - (2 sum(p t) + 1) / (sum p + sum t + 1), per channel over the batch."""

    overlap = True

    def terms(self, logits: Tensor, probs: Tensor, target: Tensor) -> Tensor:
        tp, fp, fn = _sums(probs, target)
        return 1 - (2 * tp + SMOOTH) / (2 * tp + fp + fn + SMOOTH)


@LOSSES.register("dice_bce")
class DiceBCE(SegLoss):
    """Soft Dice + (binary or categorical) cross-entropy, weighted 1:1."""

    uses_label_smoothing = True

    def __init__(
        self,
        mode: str = "binary",
        class_weights: Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(mode, class_weights, label_smoothing)
        self.dice = Dice(mode, class_weights)
        self.bce = BCE(mode, class_weights, label_smoothing)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.dice(logits, target) + self.bce(logits, target)


@LOSSES.register("mse")
class MSE(SegLoss):
    """Mean squared error between probabilities (sigmoid/softmax) and the target."""

    def terms(self, logits: Tensor, probs: Tensor, target: Tensor) -> Tensor:
        return _spatial_mean((probs - target) ** 2)


@LOSSES.register("focal")
class Focal(SegLoss):
    """Focal loss (Lin et al. 2017), gamma = 2: cross-entropy down-weighted on easy pixels."""

    channel_sum = True
    gamma = 2.0

    def terms(self, logits: Tensor, probs: Tensor, target: Tensor) -> Tensor:
        if self.mode == "multiclass":
            return _spatial_mean(-target * (1 - probs) ** self.gamma * logits.log_softmax(1))
        ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p_t = torch.exp(-ce)  # probability given to the true label
        return _spatial_mean((1 - p_t) ** self.gamma * ce)


@LOSSES.register("tversky")
class Tversky(SegLoss):
    """Tversky loss, alpha = 0.3 on false positives, beta = 0.7 on false negatives."""

    overlap = True
    alpha, beta = 0.3, 0.7

    def index(self, probs: Tensor, target: Tensor) -> Tensor:
        tp, fp, fn = _sums(probs, target)
        return (tp + SMOOTH) / (tp + self.alpha * fp + self.beta * fn + SMOOTH)

    def terms(self, logits: Tensor, probs: Tensor, target: Tensor) -> Tensor:
        return 1 - self.index(probs, target)


@LOSSES.register("focal_tversky")
class FocalTversky(Tversky):
    """Focal Tversky loss (Abraham & Khan 2019): (1 - Tversky index) ** 0.75."""

    gamma = 0.75

    def terms(self, logits: Tensor, probs: Tensor, target: Tensor) -> Tensor:
        # The clamp keeps the gradient of x ** 0.75 finite where the index is exactly 1.
        return (1 - self.index(probs, target)).clamp_min(1e-6) ** self.gamma


LOSSES.register("cross_entropy")(CrossEntropy)


def create_loss(
    name: str,
    *,
    mode: str = "binary",
    class_weights: Sequence[float] | Tensor | None = None,
    label_smoothing: float = 0.0,
) -> nn.Module:
    """Build a registered loss taking ``(logits, target)``; see the module docstring."""
    cls = LOSSES.get(name)
    if mode not in MODES:
        raise ConfigError(f"unknown loss mode {mode!r}; valid: {', '.join(MODES)}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if label_smoothing and not getattr(cls, "uses_label_smoothing", False):
        raise ConfigError(
            f"loss {name!r} does not use label_smoothing; set it to 0 or use a cross-entropy loss"
        )
    weights = None
    if class_weights is not None:
        weights = torch.as_tensor(class_weights, dtype=torch.float32).flatten()
        if weights.numel() == 0 or bool((weights < 0).any()) or not bool(weights.sum() > 0):
            raise ConfigError(
                f"class_weights must be non-negative with a positive sum, got {weights.tolist()}"
            )
    return cls(mode=mode, class_weights=weights, label_smoothing=label_smoothing)


def deep_supervision_loss(loss_fn: nn.Module, outputs: Sequence[Tensor], target: Tensor) -> Tensor:
    """``loss_fn`` over a deep-supervision network's outputs (full resolution first).

    nnU-Net's weighting: output ``i`` weighs ``2**-i``, the weights normalised to sum
    to 1; the target is resized to each output with nearest-neighbour sampling (a mask
    stays 0/1; a B x H x W index map stays an index map).
    """
    weights = [0.5**i for i in range(len(outputs))]
    total = sum(weights)
    loss = torch.zeros((), device=target.device)
    for w, out in zip(weights, outputs, strict=True):
        t = target
        if out.shape[-2:] != target.shape[-2:]:
            index_map = target.ndim == out.ndim - 1
            t = target[:, None].float() if index_map else target
            t = F.interpolate(t, size=out.shape[-2:], mode="nearest-exact")
            t = t[:, 0].to(target.dtype) if index_map else t
        loss = loss + (w / total) * loss_fn(out, t)
    return loss


def list_losses() -> dict[str, str]:
    """Registered loss names and their one-line descriptions."""
    return {n: (LOSSES.get(n).__doc__ or "").strip().splitlines()[0] for n in LOSSES.names()}
