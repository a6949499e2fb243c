"""Stub stages for pipeline tests: fixed class probabilities, a segmenter that thresholds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from braintumor.data.registry import intensity_scale

FOUR = ["glioma", "meningioma", "notumor", "pituitary"]


class StubClassifier:
    """Returns ``probs`` for every image (or ``probs_fn(image)`` when given)."""

    is_classification = True

    def __init__(
        self,
        classes: Sequence[str],
        probs: Sequence[float] | None = None,
        probs_fn: Any = None,
        spec: str = "synthetic",
    ) -> None:
        self.names = list(classes)
        self.intensity = intensity_scale(spec)
        self._probs, self._fn = probs, probs_fn
        self.calls = 0

    def predict_images(self, images: Sequence[np.ndarray], batch_size: int = 16) -> np.ndarray:
        self.calls += 1
        if self._fn is not None:
            return np.stack([np.asarray(self._fn(im), dtype=np.float32) for im in images])
        return np.tile(np.asarray(self._probs, dtype=np.float32), (len(images), 1))


class StubSegmenter:
    """Per-pixel probability = the first image channel (so the mask is ``image > 0.5``)."""

    is_classification = False
    threshold = 0.5

    def __init__(self, channels: Sequence[str] = ("tumor",), spec: str = "synthetic") -> None:
        self.names = list(channels)
        self.intensity = intensity_scale(spec)

    def predict_images(
        self, images: Sequence[np.ndarray], batch_size: int = 16, volume: bool = False
    ) -> list:
        return [np.repeat(np.asarray(im)[:1], len(self.names), axis=0) for im in images]

    def masks(self, probs: np.ndarray) -> np.ndarray:
        return (np.asarray(probs) > self.threshold).astype(np.uint8)
