"""The gate of the two-stage pipeline: a classifier decides whether a slice shows a tumor.

A slice's *tumor probability* is ``1 - P(no-tumor class)``, so a 4-class classifier
(glioma / meningioma / notumor / pituitary) counts every tumor class as "tumor". When
that probability is below the threshold the segmenter's mask is replaced by an empty
one; otherwise the segmenter's mask is kept unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from braintumor.errors import ConfigError

# Normalised names (lower case, no spaces/underscores/dashes) of a "no tumor" class.
NO_TUMOR_NAMES = ("notumor", "no", "normal", "healthy", "negative")


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(name).lower())


def no_tumor_index(classes: Sequence[str]) -> int:
    """Index of the no-tumor class (``notumor``, ``no_tumor``, ``no``, ``normal``, ...).

    Raises:
        ConfigError: when no class has such a name (the gate would be meaningless).
    """
    for i, name in enumerate(classes):
        if _norm(name) in NO_TUMOR_NAMES:
            return i
    raise ConfigError(
        f"the classifier's classes {list(classes)} include no 'no tumor' class "
        f"(one of {', '.join(NO_TUMOR_NAMES)}); use a classifier trained with one to gate"
    )


def tumor_probability(probs: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """``1 - P(no tumor)`` for each row of an N x C probability matrix."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:
        p = p[None]
    if p.shape[1] != len(classes):
        raise ValueError(
            f"probabilities have {p.shape[1]} columns but there are {len(classes)} classes"
        )
    return np.clip(1.0 - p[:, no_tumor_index(classes)], 0.0, 1.0)


def gate_mask(mask: np.ndarray, tumor_prob: float, threshold: float) -> np.ndarray:
    """The segmenter's mask when ``tumor_prob >= threshold``, else an empty mask."""
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"pipeline threshold must be in [0, 1], got {threshold}")
    if tumor_prob >= threshold:
        return mask
    return np.zeros_like(mask)


def probs_to_mask(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """K x H x W per-region probabilities -> uint8 0/1 mask (one region per channel)."""
    p = np.asarray(probs)
    if p.ndim == 2:
        p = p[None]
    return (p > threshold).astype(np.uint8)
