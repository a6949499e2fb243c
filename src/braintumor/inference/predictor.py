"""Predict with a trained run on new images, using exactly the run's preprocessing.

Classification returns class probabilities. Segmentation returns per-pixel
probabilities on each input's *own* pixel grid: the model sees the image padded to
a square and resized (:func:`~braintumor.data.preprocess.prepare_sample`), and the
output is resized back and the padding cut off. Segmentation runs never crop (see
:mod:`braintumor.engine.data`), which is what makes this inversion exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from braintumor.data.intensity import apply_volume_scale, volume_scale
from braintumor.data.stacking import stack_neighbours, volume_neighbours
from braintumor.engine.tasks import Task, create_task
from braintumor.errors import DataError
from braintumor.inference.runs import load_run
from braintumor.inference.tta import flip_tta


def pick_device(accelerator: str = "auto") -> torch.device:
    """CUDA when available (and not asked for CPU), else CPU."""
    if accelerator in ("cpu",) or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def padding_box(height: int, width: int) -> tuple[int, int, int, int]:
    """Where an ``height x width`` image lies inside its padded square: (top, left, h, w).

    Found by padding an image of ones with the very function training uses, so the
    inversion can never disagree with the forward geometry.
    """
    from braintumor.data.preprocess import pad_to_square

    padded, _ = pad_to_square(np.ones((1, height, width), dtype=np.float32))
    rows = np.flatnonzero(padded[0].any(axis=1))
    cols = np.flatnonzero(padded[0].any(axis=0))
    return int(rows[0]), int(cols[0]), height, width


def to_original_grid(probs: torch.Tensor, height: int, width: int) -> np.ndarray:
    """K x S x S probabilities -> K x height x width (undo resize, then the padding)."""
    side = max(height, width)
    x = probs[None].float()
    if x.shape[-1] != side:
        x = F.interpolate(
            x, size=(side, side), mode="bilinear", align_corners=False, antialias=side < x.shape[-1]
        )
    top, left, h, w = padding_box(height, width)
    return x[0, :, top : top + h, left : left + w].clamp(0, 1).cpu().numpy()


def _flair_channel(card: dict[str, Any]) -> int:
    """The FLAIR channel of the format the run was trained on (0 if unknown)."""
    from braintumor.data.registry import FORMATS

    name = str(card.get("data", {}).get("spec", "")).split(":", 1)[0]
    return int(FORMATS.get(name).flair_channel) if name in FORMATS else 0


class Predictor:
    """A trained model plus its preprocessing.

    Args:
        model: the network.
        card: the run's model card (``model.json``).
        device: where to run; default CUDA when available.
    """

    def __init__(
        self, model: nn.Module, card: dict[str, Any], device: str | None = None, tta: bool = False
    ) -> None:
        self.card = card
        self.tta = tta  # flip test-time augmentation (inference.tta)
        self.device = torch.device(device) if device else pick_device()
        self.model = model.eval().to(self.device)
        names = card["classes"] if card["task"] == "classification" else card["mask_channels"]
        self.task: Task = create_task(card["task"], names, float(card.get("threshold", 0.5)))
        pre = card["preprocessing"]
        self.image_size = int(pre["image_size"])
        self.channels = int(pre["channels"])
        self.crop = bool(pre["crop"])
        self.neighbours = int(pre.get("neighbours", 0))
        self.flair_channel = _flair_channel(card)
        self.per_volume = bool((card.get("normalisation") or {}).get("per_volume"))

    @classmethod
    def from_run(
        cls, run_dir: str | Path, device: str | None = None, tta: bool = False
    ) -> Predictor:
        run = load_run(run_dir)
        return cls(run.model, run.card, device, tta)

    @property
    def names(self) -> list[str]:
        """Class names (classification) or mask channel names (segmentation)."""
        return list(self.task.output_names)

    @property
    def threshold(self) -> float:
        return self.task.threshold

    def preprocess(
        self, image: np.ndarray, scales: np.ndarray | None = None, stack: bool = True
    ) -> np.ndarray:
        """One C x H x W image as the model saw its training images.

        ``scales``: the per-channel scales of the image's volume, for runs trained with
        per-volume normalisation (default: the image's own, the single-slice fallback).
        ``stack=False`` leaves out the 2.5D neighbour channels (the caller adds them).
        """
        from braintumor.data.preprocess import prepare_sample

        img = np.asarray(image, dtype=np.float32)
        if img.ndim == 2:
            img = img[None]
        if img.ndim != 3:
            raise DataError(f"expected an image C x H x W, got shape {img.shape}")
        c = img.shape[0]
        if c != self.channels and {c, self.channels} != {1, 3}:
            raise DataError(
                f"this run was trained on {self.channels}-channel images but got one with {c} "
                f"channel(s); give {self.channels} channels (e.g. one NIfTI file per sequence)"
            )
        if self.per_volume:
            img = apply_volume_scale(img, volume_scale(img) if scales is None else scales)
        sample = {"image": img, "mask": None, "label": -1, "patient_id": "", "path": ""}
        prepared = prepare_sample(sample, self.image_size, self.channels, self.crop)["image"]
        if self.neighbours and stack:
            # A slice on its own has no neighbours: the edge rule repeats its own FLAIR.
            prepared = stack_neighbours(
                prepared, [prepared] * (2 * self.neighbours), self.flair_channel
            )
        # SliceDataset stores prepared images as float16 (training, evaluation): round
        # the same way so that a prediction equals what evaluation computes.
        return prepared.astype(np.float16).astype(np.float32)

    @torch.no_grad()
    def _forward(self, batch: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
        if self.tta:
            return flip_tta(
                lambda t: self.task.postprocess(self.model(t)),
                x,
                spatial=not self.is_classification,
            ).cpu()
        return self.task.postprocess(self.model(x)).cpu()

    def predict_images(
        self, images: Sequence[np.ndarray], batch_size: int = 16, volume: bool = False
    ) -> np.ndarray | list[np.ndarray]:
        """Probabilities for a list of C x H x W float images on the format's scale.

        ``volume=True``: the images are the ordered slices of one volume, so per-volume
        scaling uses the whole volume and 2.5D runs get the real neighbouring slices.

        Returns:
            Classification: N x num_classes array. Segmentation: a list of
            K x H_i x W_i arrays, one per input, on the input's own pixel grid.
        """
        if len(images) == 0:
            return np.zeros((0, len(self.names)), np.float32) if self.is_classification else []
        out: list[Any] = []
        prepared: list[np.ndarray] | None = None
        if volume:
            scales = volume_scale(np.stack(images)) if self.per_volume else None
            flat = [self.preprocess(im, scales, stack=False) for im in images]
            idx = volume_neighbours(len(flat), self.neighbours)
            prepared = [
                stack_neighbours(f, [flat[j] for j in idx[i]], self.flair_channel)
                for i, f in enumerate(flat)
            ]
        for i in range(0, len(images), batch_size):
            chunk = images[i : i + batch_size]
            if prepared is not None:
                batch = np.stack(prepared[i : i + batch_size])
            else:
                batch = np.stack([self.preprocess(im) for im in chunk])
            probs = self._forward(batch)
            if self.is_classification:
                out.append(probs.numpy())
            else:
                for im, p in zip(chunk, probs, strict=True):
                    h, w = np.asarray(im).shape[-2:]
                    out.append(to_original_grid(p, int(h), int(w)))
        return np.concatenate(out) if self.is_classification else out

    def predict_volume(self, volume: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """Segment a C x X x Y x Z (or X x Y x Z) volume slice by slice along the last axis.

        Each axial slice is shown to the model the way the volume formats present it
        (H x W = Y x X, i.e. ``volume[:, :, z].T``, as :mod:`braintumor.data.formats.brats`),
        and the result is transposed back. Intensities must already be on the run's
        scale (e.g. z-scored inside the brain for BraTS runs).

        Returns:
            K x X x Y x Z probabilities.
        """
        if self.is_classification:
            raise DataError("predict_volume needs a segmentation run; this run classifies")
        vol = np.asarray(volume, dtype=np.float32)
        if vol.ndim == 3:
            vol = vol[None]
        if vol.ndim != 4:
            raise DataError(f"expected a volume C x X x Y x Z, got shape {vol.shape}")
        slices = [vol[..., z].transpose(0, 2, 1) for z in range(vol.shape[-1])]
        probs = self.predict_images(slices, batch_size=batch_size, volume=True)
        return np.stack([p.transpose(0, 2, 1) for p in probs], axis=-1)

    def masks(self, probs: np.ndarray) -> np.ndarray:
        """Binary masks (uint8) from segmentation probabilities at the run's threshold."""
        return (np.asarray(probs) > self.threshold).astype(np.uint8)

    @property
    def is_classification(self) -> bool:
        return self.task.name == "classification"
