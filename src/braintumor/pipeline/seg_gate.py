"""Detection read off the segmenter: a slice shows a tumor when the segmenter says so.

A separate tumor / no-tumor classifier is a second model to train, and on LGG a weak
one (0.73 accurate in 5 CPU minutes) empties more true tumor slices than it saves
healthy ones. The segmenter already answers the question: :class:`SegmenterGate`
scores a slice by its largest pixel probability (``max``) or by the fraction of its
pixels predicted as tumor (``area``), and stands in for the classifier stage of the
pipeline with the classes ``no_tumor`` / ``tumor`` and ``P(tumor) = score``. The
pipeline's ``--threshold`` is then a threshold on that score, chosen on the
validation split (``benchmarks/detection.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from braintumor.errors import ConfigError

SCORES = ("max", "area")
GATE_NAMES = {"segmenter": "max", "segmenter-max": "max", "segmenter-area": "area"}


def detection_score(probs: np.ndarray, score: str = "max", threshold: float = 0.5) -> float:
    """One slice's tumor score from its K x H x W probabilities.

    ``max``: the largest probability; ``area``: the fraction of pixels whose
    probability passes the segmenter's ``threshold`` (in any channel).
    """
    p = np.asarray(probs, dtype=np.float64)
    if score == "max":
        return float(p.max()) if p.size else 0.0
    if score == "area":
        if p.ndim == 3:
            p = p.max(axis=0)
        return float((p > threshold).mean()) if p.size else 0.0
    raise ConfigError(f"unknown detection score {score!r}; use {' or '.join(SCORES)}")


class SegmenterGate:
    """The classifier stage of the pipeline, computed from a segmentation stage."""

    is_classification = True
    names = ["no_tumor", "tumor"]

    def __init__(self, segmenter: Any, score: str = "max") -> None:
        if score not in SCORES:
            raise ConfigError(f"unknown detection score {score!r}; use {' or '.join(SCORES)}")
        self.segmenter, self.score = segmenter, score
        self.card = {**segmenter.card, "task": "classification", "classes": self.names}

    @property
    def intensity(self) -> str:
        """The segmenter's scale (the gate sees what the segmenter sees)."""
        return str(self.segmenter.intensity)

    def predict_images(self, images: Sequence[np.ndarray], batch_size: int = 16) -> np.ndarray:
        """N x 2 "probabilities" ``[1 - score, score]`` (score in [0, 1])."""
        return self.from_probabilities(self.segmenter.predict_images(images, batch_size))

    def from_probabilities(self, probs: Sequence[np.ndarray]) -> np.ndarray:
        """The same scores from segmentation probabilities already computed."""
        s = np.array(
            [detection_score(p, self.score, self.segmenter.threshold) for p in probs], np.float64
        )
        return np.stack([1.0 - s, s], axis=1) if len(s) else np.zeros((0, 2))


def gate_score(name: str) -> str | None:
    """``"max"``/``"area"`` when ``--classifier`` names the segmenter gate, else None."""
    return GATE_NAMES.get(str(name).strip().lower())
