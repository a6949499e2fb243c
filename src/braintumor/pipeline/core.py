"""The two-stage pipeline: a classifier gates a segmenter, slice by slice.

Both stages are :class:`~braintumor.inference.predictor.Predictor` objects (anything with
the same small surface works, which is how the tests use stubs). Each stage sees the
scan on the intensity scale of the data it was trained on (``Stage.intensity``, from
its model card; see :mod:`braintumor.data.intensity`) and with its own preprocessing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from rich.console import Console
from rich.progress import track

from braintumor.errors import ConfigError
from braintumor.inference.predictor import Predictor
from braintumor.inference.scans import ScanInput
from braintumor.pipeline.gating import gate_mask, no_tumor_index, tumor_probability


class Stage(Protocol):
    """What the pipeline needs from a model (:class:`Predictor` provides it)."""

    @property
    def intensity(self) -> str:
        """``unit`` or ``zscore``: the scale of the data the stage was trained on."""

    @property
    def is_classification(self) -> bool: ...

    @property
    def names(self) -> list[str]: ...

    def predict_images(
        self, images: Sequence[np.ndarray], batch_size: int = 16, volume: bool = False
    ) -> Any:
        """Probabilities; ``volume``: the images are one volume's slices, in order."""

    def masks(self, probs: np.ndarray) -> np.ndarray: ...


@dataclass
class SliceResult:
    """What the pipeline says about one slice."""

    probs: np.ndarray  # C class probabilities
    tumor_prob: float  # 1 - P(no tumor)
    kept: bool  # the gate let the segmenter's mask through
    raw_mask: np.ndarray  # K x H x W uint8, the segmenter alone
    mask: np.ndarray  # K x H x W uint8, after the gate


def progress(items: Sequence[Any], description: str, enabled: bool = True) -> Iterator[Any]:
    """Iterate with a progress bar on stderr (rich) when ``enabled``."""
    if not enabled:
        yield from items
        return

    yield from track(items, description=description, console=Console(stderr=True), transient=True)


class TwoStagePipeline:
    """Classifier gate + segmenter.

    Args:
        classifier: a classification stage whose classes include a no-tumor class.
        segmenter: a segmentation stage.
        threshold: minimum tumor probability for the segmenter's mask to be kept.
    """

    def __init__(self, classifier: Stage, segmenter: Stage, threshold: float = 0.5) -> None:
        if not classifier.is_classification:
            raise ConfigError("--classifier must be a classification run; this one segments")
        if segmenter.is_classification:
            raise ConfigError("--segmenter must be a segmentation run; this one classifies")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"--threshold must be in [0, 1], got {threshold}")
        no_tumor_index(classifier.names)  # fail now, not after the first batch
        self.classifier, self.segmenter, self.threshold = classifier, segmenter, threshold

    @classmethod
    def from_runs(
        cls,
        classifier_run: str | Path | None,
        segmenter_run: str | Path,
        threshold: float | None = None,
        device: str | None = None,
        backend: str | None = None,
    ) -> TwoStagePipeline:
        """Both stages from run folders (``backend``: see :class:`Predictor`).

        ``classifier_run`` None or ``segmenter-area``: the default gate, detection read
        off the segmenter's post-processed mask with the area threshold chosen on val
        (see :func:`~braintumor.pipeline.seg_gate.default_threshold`). ``threshold``
        None: that threshold for a segmenter gate, 0.5 for a classifier.
        """
        from braintumor.pipeline.seg_gate import (
            DEFAULT_GATE,
            SegmenterGate,
            default_threshold,
            gate_score,
        )

        segmenter = Predictor.from_run(segmenter_run, device, backend=backend)
        score = gate_score(str(classifier_run or DEFAULT_GATE))
        # "--classifier segmenter[-max|-area]": detection read off the segmenter itself.
        if score:
            if threshold is None:
                threshold = default_threshold(segmenter.card, score)
            return cls(SegmenterGate(segmenter, score), segmenter, threshold)
        classifier = Predictor.from_run(str(classifier_run), device, backend=backend)
        return cls(classifier, segmenter, 0.5 if threshold is None else threshold)

    @property
    def classes(self) -> list[str]:
        return list(self.classifier.names)

    @property
    def mask_channels(self) -> list[str]:
        return list(self.segmenter.names)

    def predict(
        self,
        cls_images: Sequence[np.ndarray],
        seg_images: Sequence[np.ndarray] | None = None,
        *,
        batch_size: int = 16,
        show_progress: bool = False,
        description: str = "pipeline",
        volume: bool = False,
    ) -> list[SliceResult]:
        """Run both stages on a list of C x H x W slices.

        Args:
            cls_images: slices on the classifier's intensity scale.
            seg_images: the same slices on the segmenter's scale (default: ``cls_images``).
            batch_size: slices per forward pass.
            show_progress: draw a progress bar (long inputs).
            description: progress bar label.
            volume: the slices are one volume, in order: the segmenter sees them as
                one (per-volume scaling, 2.5D neighbours, 3-D post-processing: see
                :meth:`Predictor.predict_images`).
        """
        seg_images = cls_images if seg_images is None else seg_images
        if len(seg_images) != len(cls_images):
            raise ValueError("cls_images and seg_images must hold the same slices")
        starts = list(range(0, len(cls_images), batch_size))
        results: list[SliceResult] = []
        whole = (
            self.segmenter.predict_images(seg_images, batch_size, volume=True) if volume else None
        )
        for i in progress(starts, description, show_progress and len(starts) > 1):
            chunk = slice(i, i + batch_size)
            if whole is not None and hasattr(self.classifier, "from_probabilities"):
                probs = self.classifier.from_probabilities(whole[chunk])  # the segmenter's own
            else:
                probs = np.asarray(self.classifier.predict_images(cls_images[chunk], batch_size))
            tprob = tumor_probability(probs, self.classes)
            seg = (
                whole[chunk]
                if whole is not None
                else self.segmenter.predict_images(seg_images[chunk], batch_size)
            )
            for p, t, sp in zip(probs, tprob, seg, strict=True):
                raw = self.segmenter.masks(sp).astype(np.uint8)
                gated = gate_mask(raw, float(t), self.threshold)
                results.append(SliceResult(p, float(t), float(t) >= self.threshold, raw, gated))
        return results

    def predict_scan(
        self, scan: ScanInput, *, batch_size: int = 16, show_progress: bool = True
    ) -> list[SliceResult]:
        """Every slice of one input (each stage on its own intensity scale)."""
        cls_scale, seg_scale = self.classifier.intensity, self.segmenter.intensity
        cls_images = scan.slices(cls_scale)
        seg_images = cls_images if seg_scale == cls_scale else scan.slices(seg_scale)
        return self.predict(
            cls_images,
            seg_images,
            batch_size=batch_size,
            show_progress=show_progress and scan.n_slices > batch_size,
            description=f"{scan.name}",
            volume=scan.is_volume,
        )
