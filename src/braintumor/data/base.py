"""The contract every data set format implements.

A format *indexes* its files cheaply (:meth:`DatasetFormat.records`) and *loads*
one record on demand (:meth:`DatasetFormat.load`). Loading returns a dict sample:

- ``image``: float32 array, C x H x W, raw intensities (any size, not yet resized)
- ``mask``: uint8 array, K x H x W (0/1 per channel) or ``None``
- ``label``: int class index (``-1`` when the format has no class)
- ``patient_id``: str, ``path``: str

Resizing, cropping, caching and augmentation happen once, elsewhere, for all
formats (see :mod:`braintumor.data.dataset`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from braintumor.errors import DataError


@dataclass
class Record:
    """One 2D sample, before loading."""

    path: str  # the file (or volume) the sample comes from
    patient_id: str
    label: int = -1  # class index, -1 if none
    split: str | None = None  # official split ("train"/"test") if the data set has one
    mask_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # slice index, clinical fields, ...

    @property
    def key(self) -> str:
        """Unique id of the sample (path plus slice index for volumes)."""
        s = self.extra.get("slice")
        return f"{self.path}#{s}" if s is not None else self.path


class DatasetFormat(ABC):
    """A data set layout on disk. Subclasses register with ``@FORMATS.register()``."""

    name: ClassVar[str]
    description: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]] = ("classification",)
    needs_path: ClassVar[bool] = True
    # Intensity scale of ``load()``'s images: "unit" ([0, 1], 8-bit files / 255) or
    # "zscore" (z-scored inside the brain per volume). Inference on new scans must
    # put them on the same scale, so the model card records it.
    intensity: ClassVar[str] = "unit"
    # Index of the FLAIR (or the one most informative) channel in ``load()``'s images:
    # the channel 2.5D input takes from neighbouring slices and channel replacement copies.
    flair_channel: ClassVar[int] = 0
    # Options the format understands (name -> default); unknown options are an error.
    default_options: ClassVar[dict[str, Any]] = {}

    def __init__(self, root: str | Path | None = None, **options: Any) -> None:
        unknown = set(options) - set(self.default_options)
        if unknown:
            raise DataError(
                f"format {self.name!r} has no option {sorted(unknown)[0]!r}; "
                f"valid options: {', '.join(self.default_options) or 'none'}"
            )
        self.options = {**self.default_options, **options}
        if self.needs_path:
            if root is None or str(root) == "":
                raise DataError(f"format {self.name!r} needs a path: use {self.name}:/path/to/data")
            root = Path(root).expanduser()
            if not root.exists():
                raise DataError(
                    f"data folder {root} does not exist; check the path after '{self.name}:'"
                )
        self.root = Path(root) if root is not None else None

    # --- what the data set is -------------------------------------------------
    @property
    @abstractmethod
    def classes(self) -> list[str]:
        """Class names, index = label."""

    @property
    def mask_channels(self) -> list[str]:
        """Names of the mask channels (empty when the format has no masks)."""
        return []

    @property
    def natural_channels(self) -> int:
        """Number of image channels the format provides by default."""
        return 1

    # --- what is on disk --------------------------------------------------------
    @abstractmethod
    def records(self) -> list[Record]:
        """All samples, cheaply (no pixel decoding). Raises DataError when empty."""

    @abstractmethod
    def load(self, rec: Record) -> dict[str, Any]:
        """Decode one sample into the dict described in the module docstring."""

    # --- helpers ----------------------------------------------------------------
    def _sample(self, rec: Record, image: np.ndarray, mask: np.ndarray | None) -> dict[str, Any]:
        if image.ndim == 2:
            image = image[None]
        if mask is not None:
            if mask.ndim == 2:
                mask = mask[None]
            if mask.shape[-2:] != image.shape[-2:]:
                raise DataError(
                    f"mask {rec.mask_path or rec.path} is {mask.shape[-2]}x{mask.shape[-1]} but "
                    f"its image {rec.path} is {image.shape[-2]}x{image.shape[-1]}; "
                    "masks must have the same size as their image"
                )
            mask = (mask > 0).astype(np.uint8)
        return {
            "image": np.ascontiguousarray(image, dtype=np.float32),
            "mask": mask,
            "label": int(rec.label),
            "patient_id": rec.patient_id,
            "path": rec.key,
        }

    @staticmethod
    def _nonempty(records: list[Record], where: Path | None, hint: str) -> list[Record]:
        if not records:
            raise DataError(f"no samples found in {where}; expected {hint}")
        return records
