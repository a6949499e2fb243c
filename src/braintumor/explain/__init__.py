"""Explanations as heat maps on the input's own pixel grid.

``explain_image(predictor, image)`` picks the method from the run: Grad-CAM for CNN
classifiers, attention rollout for ``vit``, gate maps for ``attention_unet``. The
map, computed on the model's input (crop -> pad -> resize, as in training), is mapped
back onto the input's pixels: resized to the cropped square, padding cut off, and
put back where the crop came from (0 outside the crop).
``explain_inputs(run, paths, out)`` writes ``<name>_<method>.png`` overlays at each
input's size plus ``explanations.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from braintumor.data.preprocess import crop_foreground
from braintumor.errors import ConfigError
from braintumor.explain.maps import (
    attention_gates,
    attention_rollout,
    cam_layer_by_name,
    grad_cam,
)
from braintumor.figures.overlay import heatmap_rgb
from braintumor.inference.predictor import Predictor, to_original_grid
from braintumor.inference.scans import load_input

METHODS = ("auto", "gradcam", "rollout", "gates")


@dataclass
class Explanation:
    """A heat map in [0, 1] at the input image's size, and what it explains."""

    heat: np.ndarray  # H x W
    method: str
    label: str | None  # explained class (classification)
    probability: float | None


def pick_method(
    card: dict[str, Any],
    method: str = "auto",
    layer: str | None = None,
    model: torch.nn.Module | None = None,
) -> str:
    """The method for a run: ``gradcam``, ``rollout`` (vit) or ``gates`` (attention_unet).

    A Grad-CAM ``layer`` is checked too: refused for the other methods, and looked up
    in ``model`` when one is given.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown explanation method {method!r}; use one of {', '.join(METHODS)}")
    seg = card["task"] == "segmentation"
    if method == "auto":
        method = "gates" if seg else ("rollout" if card["name"].startswith("vit") else "gradcam")
    if seg and method != "gates":
        raise ConfigError(f"{method} explains classifiers; {card['name']} segments")
    if method == "gates" and card["name"] != "attention_unet":
        raise ConfigError(
            f"model {card['name']!r} has no attention gates; explain supports classifiers "
            "(Grad-CAM, ViT attention rollout) and attention_unet"
        )
    if layer is not None:
        if method != "gradcam":
            raise ConfigError(f"--layer applies to Grad-CAM only, not to {method}")
        if model is not None:
            cam_layer_by_name(model, layer)
    return method


def crop_origin(image: np.ndarray, crop: bool) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the region the preprocessing keeps.

    The crop is found by running the training crop itself on a grid of pixel indices
    (passed as the "mask"), so it can never disagree with the forward geometry.
    """
    h, w = image.shape[-2:]
    if not crop:
        return 0, 0, h, w

    rows, cols = np.mgrid[:h, :w].astype(np.int32)
    _, idx = crop_foreground(image, np.stack([rows, cols]))
    assert idx is not None
    return int(idx[0, 0, 0]), int(idx[1, 0, 0]), int(idx.shape[-2]), int(idx.shape[-1])


def to_input_grid(heat: np.ndarray, image: np.ndarray, crop: bool) -> np.ndarray:
    """S x S heat map at the model's input -> H x W on ``image``'s pixel grid."""

    top, left, ch, cw = crop_origin(image, crop)
    inner = to_original_grid(torch.from_numpy(np.asarray(heat, np.float32))[None], ch, cw)[0]
    out = np.zeros(image.shape[-2:], dtype=np.float32)
    out[top : top + ch, left : left + cw] = inner
    return out


def explain_image(
    predictor: Any,
    image: np.ndarray,
    method: str = "auto",
    target: str | None = None,
    layer: str | None = None,
) -> Explanation:
    """Explain one C x H x W image (on the run's intensity scale) with a loaded Predictor.

    ``layer`` picks the Grad-CAM layer by module name (default: the last conv block).
    """
    card = predictor.card
    method = pick_method(card, method, layer, predictor.model)
    names = list(predictor.names)
    idx = None
    if target is not None:
        if target not in names:
            raise ConfigError(f"--target {target!r} is not a class of this run: {names}")
        idx = names.index(target)
    x = torch.from_numpy(predictor.preprocess(image))[None].to(predictor.device)
    if method == "gradcam":
        res = grad_cam(predictor.model, x, idx, layer)
    elif method == "rollout":
        res = attention_rollout(predictor.model, x)
    else:
        res = attention_gates(predictor.model, x)
    heat = to_input_grid(res["heat"], np.asarray(image), predictor.crop)
    label = prob = None
    if res["probs"] is not None:
        t = res["target"] if idx is None else idx
        label, prob = names[t], float(res["probs"][t])
    return Explanation(np.clip(heat, 0, 1), method, label, prob)


def explain_inputs(
    run_dir: str | Path,
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    method: str = "auto",
    target: str | None = None,
    slice_index: int | None = None,
    device: str | None = None,
    layer: str | None = None,
) -> list[Path]:
    """Write a heat-map overlay PNG (at the input's size) per input into ``out``.

    Volumes (NIfTI, DICOM series, BraTS cases) are explained on one slice:
    ``slice_index``, default the middle one.
    """

    predictor = Predictor.from_run(run_dir, device)
    pick_method(predictor.card, method, layer, predictor.model)  # fail before reading any input
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    written, records = [], []
    for path in inputs:
        scan = load_input(path)
        z = scan.n_slices // 2 if slice_index is None else slice_index
        if not 0 <= z < scan.n_slices:
            raise ConfigError(f"--slice {z} is outside {scan.path} ({scan.n_slices} slices)")
        image = predictor.scan_slices(scan)[z]
        ex = explain_image(predictor, image, method, target, layer)
        name = f"{scan.name}{f'_z{z}' if scan.is_volume else ''}_{ex.method}.png"
        rgb = heatmap_rgb(scan.slices("unit")[z], ex.heat, image_channel=scan.display_channel)
        Image.fromarray(rgb).save(out / name)
        written.append(out / name)
        records.append(
            {
                "input": str(scan.path),
                "slice": z if scan.is_volume else None,
                "file": name,
                "method": ex.method,
                **({"layer": layer} if layer else {}),
                "class": ex.label,
                "probability": ex.probability,
            }
        )
    (out / "explanations.json").write_text(json.dumps(records, indent=2) + "\n")
    return written


__all__ = ["Explanation", "explain_image", "explain_inputs", "pick_method", "to_input_grid"]
