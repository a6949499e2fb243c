"""Where a model looks: Grad-CAM, attention rollout and attention-gate maps.

Each function takes a model and one preprocessed input ``x`` (1 x C x S x S, what the
model sees) and returns a heat map in [0, 1] at the model's input size, S x S.
Mapping it back onto the original image is :func:`braintumor.explain.to_input_grid`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from braintumor.errors import ConfigError


def _normalise(heat: torch.Tensor) -> np.ndarray:
    heat = heat.detach().float().clamp(min=0)
    top = float(heat.max())
    return (heat / top if top > 0 else heat).cpu().numpy()


def _upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """B x 1 x h x w (or h x w) -> size, bilinear."""
    m = maps if maps.ndim == 4 else maps[None, None]
    return F.interpolate(m.float(), size=size, mode="bilinear", align_corners=False)[0, 0]


def cam_layer_by_name(model: nn.Module, name: str | None) -> nn.Module:
    """``model.cam_layer()`` when ``name`` is None, else the submodule of that dotted name.

    A layer nearer the input gives a finer but less class-specific map (e.g. at 128 px
    the last block of ``custom_cnn`` is 4 x 4; ``features.4``, its third block, is 8 x 8).
    """
    if name is None:
        if not hasattr(model, "cam_layer"):
            raise ConfigError(
                f"{type(model).__name__} has no cam_layer(); Grad-CAM needs a classifier"
            )
        return model.cam_layer()  # type: ignore[operator,no-any-return]
    modules = dict(model.named_modules())
    if name not in modules or not name:
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
        shown = ", ".join(convs[-8:]) + (f" (and {len(convs) - 8} more)" if len(convs) > 8 else "")
        raise ConfigError(
            f"--layer {name!r} is not a layer of {type(model).__name__}; conv layers: {shown}"
        )
    return modules[name]


def grad_cam(
    model: nn.Module, x: torch.Tensor, target: int | None = None, layer: str | None = None
) -> dict[str, Any]:
    """Grad-CAM (Selvaraju et al. 2017) on ``model.cam_layer()`` or the named ``layer``.

    The feature maps of the hooked layer are weighted by the spatial mean of the
    gradient of the target logit, summed over channels, rectified and scaled to a
    maximum of 1 (all zeros when nothing speaks for the class).

    Args:
        model: a classifier with ``cam_layer()``.
        x: 1 x C x S x S input.
        target: class index to explain; default the predicted class.
        layer: dotted module name (``model.named_modules()``) to hook instead of the
            model's default, which is its last convolutional block.

    Returns:
        ``{"heat": S x S array, "target": int, "probs": C array}``.
    """
    hooked = cam_layer_by_name(model, layer)
    store: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        store["act"] = out
        out.register_hook(lambda g: store.__setitem__("grad", g))

    handle = hooked.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            # An input that needs grad guarantees a graph even if every weight is frozen.
            logits = model(x.detach().clone().requires_grad_(True))
            probs = torch.softmax(logits.detach().float(), dim=1)[0]
            idx = int(probs.argmax()) if target is None else int(target)
            logits[0, idx].backward()
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if "grad" not in store or store["act"].ndim != 4:
        raise ConfigError(
            f"--layer {layer!r} gives no spatial feature map on the path to the logits; "
            "pick a convolutional block"
        )
    act, grad = store["act"][0].detach(), store["grad"][0].detach()  # D x h x w
    cam = torch.relu((grad.mean(dim=(1, 2))[:, None, None] * act).sum(0))
    heat = _upsample(cam, (int(x.shape[-2]), int(x.shape[-1])))
    return {"heat": _normalise(heat), "target": idx, "probs": probs.cpu().numpy()}


@torch.no_grad()
def attention_rollout(model: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """Attention rollout (Abnar & Zuidema 2020) of a ViT's class token over the patches.

    Per layer: heads averaged, identity added for the residual path, rows
    re-normalised; the layers are multiplied from the first to the last.
    """
    if not hasattr(model, "attention_maps"):
        raise ConfigError(f"{type(model).__name__} has no attention_maps(); rollout needs a ViT")
    model.eval()
    maps = model.attention_maps(x)  # type: ignore[operator]
    probs = torch.softmax(model(x).float(), dim=1)[0]
    n = maps[0].shape[-1]
    eye = torch.eye(n, device=maps[0].device)
    rollout = eye
    for a in maps:
        a = a[0].float().mean(0) + eye
        rollout = (a / a.sum(-1, keepdim=True)) @ rollout
    patch = int(getattr(model, "patch_size", 16))
    h, w = x.shape[-2] // patch, x.shape[-1] // patch
    cls_to_patches = rollout[0, 1:].reshape(h, w)
    heat = _upsample(cls_to_patches, (int(x.shape[-2]), int(x.shape[-1])))
    heat = heat - heat.min()  # rollout is never 0: stretch its range for display
    return {"heat": _normalise(heat), "target": int(probs.argmax()), "probs": probs.cpu().numpy()}


@torch.no_grad()
def attention_gates(model: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """Mean of an attention U-Net's gate maps (each in [0, 1]), upsampled to the input.

    Values are kept on their own [0, 1] scale (not stretched): a gate of 0.5
    everywhere means "no preference", which stretching would hide.
    """
    model.eval()
    try:
        logits, maps = model(x, return_attention=True)
    except TypeError:
        raise ConfigError(
            f"{type(model).__name__} has no attention gates; explain supports classifiers "
            "(Grad-CAM, ViT attention rollout) and attention_unet"
        ) from None
    if not maps:
        raise ConfigError(f"{type(model).__name__} returned no attention maps")
    size = (int(x.shape[-2]), int(x.shape[-1]))
    heat = torch.stack([_upsample(m[:1], size) for m in maps]).mean(0).clamp(0, 1)
    del logits  # the segmentation itself is the pipeline's job
    return {"heat": heat.cpu().numpy(), "target": None, "probs": None}
