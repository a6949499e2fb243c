"""Predict with a trained run on new scans, using exactly the run's preprocessing.

The model card says how a scan must be prepared: its intensity scale
(``normalisation``: ``unit`` or ``zscore``, applied by :meth:`Predictor.scan_slices`
through :mod:`braintumor.data.intensity`) and its geometry (``preprocessing``:
image size, channels, crop).

Classification returns class probabilities. Segmentation returns per-pixel
probabilities on each input's *own* pixel grid: the model sees the image padded to a
square and resized (:func:`~braintumor.data.preprocess.prepare_sample`), and the output
is resized back and the padding cut off. Segmentation runs never crop (the engine
decides the crop per task), which is what makes this inversion exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from braintumor.data.preprocess import one_thread
from braintumor.errors import ConfigError, DataError
from braintumor.inference.backends import Runtime
from braintumor.inference.batching import (  # padding_box, to_original_grid: re-exported
    padding_box,
    restore_batch,
    to_original_grid,
)
from braintumor.inference.postprocess import Levers, drop_small_probabilities
from braintumor.inference.preprocessing import InputSpec
from braintumor.inference.runs import WEIGHTS_FILE, card_intensity, load_run
from braintumor.inference.scans import ScanInput
from braintumor.inference.tta import flip_tta

TASKS = ("classification", "segmentation")
__all__ = ["Predictor", "padding_box", "pick_device", "probabilities", "to_original_grid"]


def pick_device(accelerator: str = "auto") -> torch.device:
    """CUDA when available (and not asked for CPU), else CPU."""
    if accelerator in ("cpu",) or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda")


def probabilities(task: str, logits: torch.Tensor) -> torch.Tensor:
    """Logits -> probabilities: softmax over classes, or one sigmoid per mask channel
    (BraTS regions overlap, WT > TC > ET). Training's metrics use the same function."""
    if task == "classification":
        return torch.softmax(logits.float(), dim=1)
    return torch.sigmoid(logits.float())


class Predictor:
    """A trained model plus its preprocessing.

    On a CPU the network runs in the fastest variant that gives eager fp32's output
    within the stated tolerance (bf16, channels-last and/or ONNX Runtime, timed on the
    first batch: :mod:`braintumor.inference.backends`); a run trained in bf16 runs as
    trained; ``precision="32-true"`` forces eager fp32 (e.g. to compare).
    :attr:`runtime` names what runs.

    Args:
        model: the network.
        card: the run's model card (``model.json``).
        device: where to run; default CUDA when available.
        precision: override the card's precision.
        tta: flip test-time augmentation; None: the card's ``inference.tta`` (chosen on
            val with ``trainer.levers=val``), else off. The card's
            ``inference.min_component_voxels`` is applied to volumes (see
            :meth:`predict_images`).
        backend: ``auto`` (the default on a CPU: the fastest exact-enough variant),
            ``eager`` (the card's precision and layout, as trained) or ``onnxruntime``
            (the fp32 graph; eager after one line where it cannot run); default
            ``$BRAINTUMOR_BACKEND``, else the card's ``runtime.backend``, else auto.
        cache_key: identifies the weights for the in-memory calibration cache
            (:meth:`from_run` passes the weights file and its mtime).
    """

    def __init__(
        self,
        model: nn.Module,
        card: dict[str, Any],
        device: str | None = None,
        precision: str | None = None,
        tta: bool | None = None,
        backend: str | None = None,
        cache_key: tuple[Any, ...] | None = None,
    ) -> None:
        self.card = card
        levers = Levers.from_card(card)
        self.tta = levers.tta if tta is None else bool(tta)  # flip TTA (inference.tta)
        self.min_component_voxels = levers.min_component_voxels
        self.keep_largest = levers.keep_largest  # a volume is never emptied by the removal
        self.device = torch.device(device) if device else pick_device()
        self.model = model.eval().to(self.device)
        if card["task"] not in TASKS:
            raise ConfigError(f"unknown task {card['task']!r}; use one of: {', '.join(TASKS)}")
        self.task_name = str(card["task"])
        names = card["classes"] if self.is_classification else card["mask_channels"]
        self._names = [str(n) for n in names]
        self._threshold = float(card.get("threshold", 0.5))
        self.spec = InputSpec.from_card(card)  # how the training images were prepared
        self.image_size, self.channels, self.crop = (
            self.spec.image_size,
            self.spec.channels,
            self.spec.crop,
        )
        # Cards written before these settings existed ran in fp32, NCHW.
        self._runtime = Runtime(
            self.model,
            self.task_name,
            self.device,
            card.get("runtime"),
            precision=precision,
            backend=backend,
            threshold=self._threshold,
            # The network's own input channels (2.5D runs stack neighbours onto the card's).
            input_shape=(int(card.get("in_channels", self.channels)), self.image_size),
            label=str(card.get("name", "this model")),
            cache_key=cache_key,
        )

    @classmethod
    def from_run(
        cls,
        run_dir: str | Path,
        device: str | None = None,
        precision: str | None = None,
        tta: bool | None = None,
        backend: str | None = None,
    ) -> Predictor:
        run = load_run(run_dir)
        weights = run.path / WEIGHTS_FILE
        stamp = weights.stat().st_mtime_ns if weights.is_file() else None
        key = (str(weights.resolve()), stamp)
        return cls(run.model, run.card, device, precision, tta, backend, cache_key=key)

    @property
    def runtime(self) -> str:
        """What runs the network: e.g. ``eager bf16 channels-last``, ``onnxruntime fp32``
        (``auto (not calibrated yet)`` before the first batch)."""
        return self._runtime.name

    @property
    def backend(self) -> str:
        """``eager`` or ``onnxruntime`` (``auto`` before the first batch calibrates)."""
        return "auto" if self._runtime.pending else self._runtime.variant.engine

    @property
    def precision(self) -> str:
        """The precision the network runs in (resolved; fp32 for ONNX Runtime)."""
        return self._runtime.variant.precision

    @property
    def channels_last(self) -> bool:
        return self._runtime.variant.channels_last

    def calibrate(self, batch: np.ndarray | None = None) -> str:
        """Choose the variant now (``auto``), on a prepared N x C x S x S ``batch`` or on
        smooth random images; otherwise it happens on the first batch predicted.
        Returns :attr:`runtime`."""
        if self._runtime.pending:
            x = None if batch is None else torch.from_numpy(np.ascontiguousarray(batch))
            self._runtime.calibrate(None if x is None else x.to(self.device))
        return self.runtime

    @property
    def names(self) -> list[str]:
        """Class names (classification) or mask channel names (segmentation)."""
        return list(self._names)

    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def intensity(self) -> str:
        """The intensity scale the run was trained on: ``unit`` or ``zscore``."""
        return card_intensity(self.card)

    def scan_slices(self, scan: ScanInput) -> list[np.ndarray]:
        """A scan's slices on the run's intensity scale (C x H x W each).

        Raises:
            DataError: the scan has a channel count the run cannot take, naming the fix.
        """
        have, want = int(scan.data.shape[0]), self.channels
        if not self.spec.accepts(have):  # gray <-> RGB is converted
            if scan.kind == "image" and self.is_classification:
                fix = "image files give 1 or 3 channels, so use a run trained on 1 or 3 channels"
            elif want > 1:
                fix = (
                    f"pass the {want} sequences of a case as {want} NIfTI files (in the "
                    "training channel order) or as a BraTS case folder"
                )
            else:
                fix = "pass a single-sequence scan"
            raise DataError(
                f"{scan.path} has {have} channel(s) but this run was trained on "
                f"{want}-channel images; {fix}"
            )
        return scan.slices(self.intensity)

    def predict_scan(self, scan: ScanInput, batch_size: int = 16) -> np.ndarray | list[np.ndarray]:
        """:meth:`predict_images` on every slice of ``scan``, scaled as the run expects."""
        slices = self.scan_slices(scan)
        return self.predict_images(slices, batch_size=batch_size, volume=scan.is_volume)

    def preprocess(
        self, image: np.ndarray, scales: np.ndarray | None = None, stack: bool = True
    ) -> np.ndarray:
        """One C x H x W image (on the run's intensity scale) as the model saw its
        training images (:meth:`InputSpec.prepare`)."""
        return self.spec.prepare(image, scales, stack)

    @torch.no_grad()
    def _forward(self, batch: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)

        def run(t: torch.Tensor) -> torch.Tensor:
            return probabilities(self.task_name, self._runtime(t))

        if self.tta:
            return flip_tta(run, x, spatial=not self.is_classification).cpu()
        return run(x).cpu()

    def predict_images(
        self, images: Sequence[np.ndarray], batch_size: int = 16, volume: bool = False
    ) -> np.ndarray | list[np.ndarray]:
        """Probabilities for a list of C x H x W float images on the format's scale.

        ``volume=True``: the images are the ordered slices of one volume, so per-volume
        scaling uses the whole volume, 2.5D runs get the real neighbouring slices and
        the card's ``inference.min_component_voxels`` drops small 3-D components
        (:func:`~braintumor.inference.postprocess.drop_small_probabilities`). Separate
        2D images are not post-processed: one slice cannot tell a small lesion from
        the edge of a large one.

        Returns:
            Classification: N x num_classes array. Segmentation: a list of
            K x H_i x W_i arrays, one per input, on the input's own pixel grid.
        """
        if len(images) == 0:
            return np.zeros((0, len(self.names)), np.float32) if self.is_classification else []
        out: list[Any] = []
        prepared = self.spec.prepare_volume(list(images)) if volume else None  # None: as 2D
        for i in range(0, len(images), batch_size):
            chunk = [np.asarray(im) for im in images[i : i + batch_size]]
            if prepared is not None:
                batch = np.stack(prepared[i : i + batch_size])
            else:
                batch = self.spec.prepare_chunk(chunk)
            probs = self._forward(batch)
            if self.is_classification:
                out.append(probs.numpy())
            else:
                out.extend(self._restore(chunk, probs))
        if self.is_classification:
            return np.concatenate(out)
        if volume and self.min_component_voxels > 1:
            out = drop_small_probabilities(
                out, self.threshold, self.min_component_voxels, self.image_size, self.keep_largest
            )
        return out

    def _restore(self, chunk: list[np.ndarray], probs: torch.Tensor) -> list[np.ndarray]:
        """Probabilities back on each input's own grid (:func:`to_original_grid`)."""
        sizes = {tuple(im.shape[-2:]) for im in chunk}
        if len(sizes) == 1:
            h, w = sizes.pop()
            return list(restore_batch(probs, int(h), int(w)))
        with one_thread():
            return [
                to_original_grid(p, int(im.shape[-2]), int(im.shape[-1]))
                for im, p in zip(chunk, probs, strict=True)
            ]

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
        return self.task_name == "classification"
