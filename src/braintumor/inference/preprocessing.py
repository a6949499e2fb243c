"""How a run's images were prepared, as one object read off the model card.

:class:`InputSpec` turns C x H x W images on the run's intensity scale into the network's
input, exactly as training's :class:`~braintumor.data.dataset.SliceDataset` prepared them:
per-volume scaling (``normalisation.per_volume``), the card's geometry (``preprocessing``:
image size, channels, crop; :func:`~braintumor.data.preprocess.prepare_sample`), the 2.5D
neighbour channels (``preprocessing.neighbours``) and float16 rounding.
:class:`~braintumor.inference.predictor.Predictor` runs the network on what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from braintumor.data.intensity import apply_volume_scale, volume_scale
from braintumor.data.preprocess import one_thread, prepare_sample
from braintumor.data.stacking import stack_neighbours, volume_neighbours
from braintumor.errors import DataError
from braintumor.inference.batching import prepare_batch


def _flair_channel(card: dict[str, Any]) -> int:
    """The FLAIR channel of the format the run was trained on (0 if unknown)."""
    from braintumor.data.registry import FORMATS

    name = str(card.get("data", {}).get("spec", "")).split(":", 1)[0]
    return int(FORMATS.get(name).flair_channel) if name in FORMATS else 0


@dataclass(frozen=True)
class InputSpec:
    """The card's preprocessing: what :meth:`prepare` does to every image."""

    image_size: int
    channels: int
    crop: bool
    neighbours: int = 0  # 2.5D: FLAIR of this many slices below and above
    flair_channel: int = 0
    per_volume: bool = False

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> InputSpec:
        pre = card["preprocessing"]
        return cls(
            image_size=int(pre["image_size"]),
            channels=int(pre["channels"]),
            crop=bool(pre["crop"]),
            neighbours=int(pre.get("neighbours", 0)),
            flair_channel=_flair_channel(card),
            per_volume=bool((card.get("normalisation") or {}).get("per_volume")),
        )

    def accepts(self, channels: int) -> bool:
        """Whether an image with this many channels can be given (gray <-> RGB converts)."""
        return channels == self.channels or {channels, self.channels} == {1, 3}

    def prepare(
        self, image: np.ndarray, scales: np.ndarray | None = None, stack: bool = True
    ) -> np.ndarray:
        """One C x H x W image as the model saw its training images.

        ``scales``: the per-channel scales of the image's volume, for runs trained with
        per-volume normalisation (default: the image's own, the single-slice fallback).
        ``stack=False`` leaves out the 2.5D neighbour channels (the caller adds them).
        """
        img = np.asarray(image, dtype=np.float32)
        if img.ndim == 2:
            img = img[None]
        if img.ndim != 3:
            raise DataError(f"expected an image C x H x W, got shape {img.shape}")
        c = img.shape[0]
        if not self.accepts(c):
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

    def prepare_chunk(self, chunk: list[np.ndarray]) -> np.ndarray:
        """:meth:`prepare` of separate images, batched where the slices share a shape (and
        no per-slice step (crop, per-volume scale, 2.5D neighbours) is involved)."""
        shape = chunk[0].shape
        same = len(shape) == 3 and all(im.shape == shape for im in chunk)
        if self.crop or self.per_volume or self.neighbours or not (same and self.accepts(shape[0])):
            with one_thread():  # per-slice resizing: see one_thread
                return np.stack([self.prepare(im) for im in chunk])
        return prepare_batch(np.stack(chunk), self.image_size, self.channels)

    def prepare_volume(self, images: list[np.ndarray]) -> list[np.ndarray] | None:
        """The ordered slices of one volume, each prepared with the whole volume's scales
        and its real neighbouring slices; None where that changes nothing (no per-volume
        scaling, no 2.5D: the slices are prepared as separate images)."""
        if not (self.per_volume or self.neighbours):
            return None
        scales = volume_scale(np.stack(images)) if self.per_volume else None
        flat = [self.prepare(im, scales, stack=False) for im in images]
        idx = volume_neighbours(len(flat), self.neighbours)
        return [
            stack_neighbours(f, [flat[j] for j in idx[i]], self.flair_channel)
            for i, f in enumerate(flat)
        ]
