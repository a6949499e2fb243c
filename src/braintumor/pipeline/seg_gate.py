"""Detection read off the segmenter: a slice shows a tumor when the segmenter says so.

A separate tumor / no-tumor classifier is a second model to train, and on LGG a weak
one (0.73 accurate in 5 CPU minutes) empties more true tumor slices than it saves
healthy ones. The segmenter already answers the question: :class:`SegmenterGate`
scores a slice by its largest pixel probability (``max``) or by the fraction of its
pixels predicted as tumor (``area``), and stands in for the classifier stage of the
pipeline with the classes ``no_tumor`` / ``tumor`` and ``P(tumor) = score``. The
pipeline's ``--threshold`` is then a threshold on that score. The area gate is the
pipeline's default (``--classifier`` not given): its threshold is the one chosen on the
segmenter's validation split when it was trained (:func:`default_threshold`); on a
volume it reads the post-processed probabilities (3-D component removal applied).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from braintumor.errors import ConfigError
from braintumor.inference.postprocess import Levers

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


# The pipeline's gate when --classifier is not given.
DEFAULT_GATE = "segmenter-area"
# Area threshold "any predicted pixel": the gate then keeps exactly the slices whose
# (post-processed) mask is not empty, i.e. the segmenter alone.
ANY_PIXEL = 1e-9


def default_threshold(card: dict[str, Any], score: str) -> float:
    """The gate threshold when ``--threshold`` is not given.

    ``area``: the fraction chosen on the segmenter's validation split when it was
    trained (the card's ``inference.gate_area``, ``engine/levers.py``), or, where none
    was chosen (no threshold beat the segmenter alone on val, or an older run), any
    predicted pixel. ``max``: 0.5.
    """
    if score == "max":
        return 0.5
    gate = Levers.from_card(card).gate_area
    return ANY_PIXEL if gate is None or gate <= 0 else float(gate)


def gate_score(name: str) -> str | None:
    """``"max"``/``"area"`` when ``--classifier`` names the segmenter gate, else None."""
    return GATE_NAMES.get(str(name).strip().lower())
