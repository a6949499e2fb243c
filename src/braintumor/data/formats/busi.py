"""Breast Ultrasound Images (BUSI, Al-Dhabyani et al. 2020): not brain MRI, but a
common second benchmark for the same classify-and-segment pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from braintumor.data.base import DatasetFormat, Record
from braintumor.data.io import read_image, read_mask
from braintumor.data.preprocess import to_channels
from braintumor.data.registry import FORMATS
from braintumor.errors import DataError


def _is_mask(p: Path) -> bool:
    return "_mask" in p.stem


@FORMATS.register()
class BUSIFormat(DatasetFormat):
    """``<root>/benign|malignant|normal/<name>.png`` with one or more masks
    ``<name>_mask.png``, ``<name>_mask_1.png``, ... (merged by OR: some images
    outline several lesions in separate files). Normal images have empty masks.

    ``root`` may also be the folder that contains ``Dataset_BUSI_with_GT``. Classes
    are the sorted class folder names; the set has no patient ids, so every image
    is its own patient. Images (gray ultrasound saved as RGB) load as one channel.
    """

    name = "busi"
    description = "Breast ultrasound BUSI: benign|malignant|normal/<name>.png + <name>_mask*.png"
    tasks = ("classification", "segmentation")
    layout_hint = "<root>/benign|malignant|normal/<name>.png with <name>_mask.png"

    def _base(self) -> Path:
        assert self.root is not None
        nested = self.root / "Dataset_BUSI_with_GT"
        return nested if nested.is_dir() else self.root

    def _class_folders(self) -> list[Path]:
        base = self._base()
        if not base.is_dir():
            raise DataError(f"{base} is not a folder; expected {self.layout_hint}")
        return sorted(
            p
            for p in base.iterdir()
            if p.is_dir() and not p.name.startswith((".", "__")) and any(p.glob("*.png"))
        )

    @property
    def classes(self) -> list[str]:
        return [p.name for p in self._class_folders()]

    @property
    def mask_channels(self) -> list[str]:
        return ["tumor"]

    def records(self) -> list[Record]:
        recs = []
        for label, folder in enumerate(self._class_folders()):
            files = sorted(folder.glob("*.png"))
            masks = [p for p in files if _is_mask(p)]
            for image in (p for p in files if not _is_mask(p)):
                own = sorted(
                    m
                    for m in masks
                    if m.stem == f"{image.stem}_mask" or m.stem.startswith(f"{image.stem}_mask_")
                )
                if not own:
                    raise DataError(
                        f"{image} has no mask {image.stem}_mask.png; every BUSI image has one "
                        "(re-download, or move the image out of the folder)"
                    )
                recs.append(
                    Record(
                        path=str(image),
                        patient_id=str(image),
                        label=label,
                        mask_path=str(own[0]),
                        extra={"mask_paths": [str(m) for m in own]},
                    )
                )
        return self._nonempty(recs, self._base(), self.layout_hint)

    def load(self, rec: Record) -> dict[str, Any]:
        image = to_channels(read_image(rec.path), 1)
        paths = rec.extra.get("mask_paths") or [rec.mask_path]
        mask = np.zeros(image.shape[-2:], dtype=np.uint8)
        for p in paths:
            m = read_mask(p)
            if m.shape != mask.shape:
                raise DataError(
                    f"mask {p} is {m.shape[0]}x{m.shape[1]} but its image {rec.path} is "
                    f"{mask.shape[0]}x{mask.shape[1]}; masks must have the same size as their image"
                )
            mask |= m
        return self._sample(rec, image, mask)
