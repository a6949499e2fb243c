"""Buda's Kaggle "Brain MRI segmentation" set (TCGA lower-grade glioma, ``kaggle_3m``)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from braintumor.data.base import DatasetFormat, Record
from braintumor.data.formats._index import cached_facts
from braintumor.data.intensity import apply_volume_scale, volume_scale
from braintumor.data.io import read_image, read_mask
from braintumor.data.registry import FORMATS
from braintumor.errors import DataError


def _value(text: str) -> Any:
    """CSV cell -> int, float, str, or None when empty (the table has gaps)."""
    text = text.strip()
    if text == "" or text.upper() == "NA":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _slice_number(image: Path) -> int:
    tail = image.stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else -1


@FORMATS.register()
class LGGFormat(DatasetFormat):
    """``kaggle_3m/TCGA_<site>_<id>_<date>/<case>_<n>.tif`` + ``<case>_<n>_mask.tif``.

    Images are 256x256x3 (pre-contrast, FLAIR, post-contrast; a missing sequence is
    replaced by FLAIR in the original), masks the FLAIR abnormality (0/255). The root
    may be ``kaggle_3m`` or the folder that contains it.

    - classification: ``["no_tumor", "tumor"]``, label = the mask has any pixel (all
      masks are read on the first :meth:`records`, ~2 s for 1,716 slices, then the
      flags are cached on disk).
    - segmentation: one mask channel, ``"tumor"``.
    - ``normalize=volume``: per-volume intensity scaling (see :func:`volume_scale`;
      the model card records the option, so inference scales new scans the same way).
    - patient: the TCGA patient barcode (first three parts of the folder name, e.g.
      ``TCGA_CS_4942``), which is also the key of ``data.csv``; its row goes, with
      numbers parsed, into ``Record.extra["clinical"]`` (empty if the patient has none).
    """

    name = "lgg"
    description = "Kaggle LGG segmentation (Buda): kaggle_3m/TCGA_*/<case>_<n>.tif + _mask.tif"
    tasks = ("classification", "segmentation")
    flair_channel = 1  # pre-contrast, FLAIR, post-contrast
    # normalize: "slice" keeps the 8-bit files / 255; "volume" divides each channel by
    # its 99th percentile over the patient's brain (all slices), as Buda et al. scale
    # each volume: one scan ~5x darker than the others then looks like the rest.
    default_options: ClassVar[dict[str, Any]] = {"normalize": "slice"}
    layout_hint = "<root>/kaggle_3m/TCGA_<site>_<id>_<date>/<case>_<n>.tif with <case>_<n>_mask.tif"

    def __init__(self, root: str | Path | None = None, **options: Any) -> None:
        super().__init__(root, **options)
        if self.options["normalize"] not in NORMALIZE:
            raise DataError(
                f"lgg option normalize={self.options['normalize']!r} is unknown; "
                f"use {' or '.join(NORMALIZE)}"
            )
        self._records: list[Record] | None = None
        self._scales: dict[str, list[float]] = {}

    @property
    def classes(self) -> list[str]:
        return ["no_tumor", "tumor"]

    @property
    def mask_channels(self) -> list[str]:
        return ["tumor"]

    @property
    def natural_channels(self) -> int:
        return 3

    def _base(self) -> Path:
        assert self.root is not None
        nested = self.root / "kaggle_3m"
        return nested if nested.is_dir() else self.root

    @staticmethod
    def _case_folders(base: Path) -> list[Path]:
        return sorted(
            p for p in base.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))
        )

    @staticmethod
    def read_clinical(base: Path) -> dict[str, dict[str, Any]]:
        """``data.csv`` as patient barcode -> {column: value}; empty if absent."""
        table = base / "data.csv"
        if not table.is_file():
            return {}
        with table.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        if rows and "Patient" not in rows[0]:
            raise DataError(f"{table} has no 'Patient' column; is it the LGG data.csv?")
        return {r["Patient"].strip(): {k: _value(v or "") for k, v in r.items()} for r in rows}

    def records(self) -> list[Record]:
        if self._records is not None:
            return list(self._records)
        base = self._base()
        if not base.is_dir():
            raise DataError(f"{base} is not a folder; expected {self.layout_hint}")
        clinical = self.read_clinical(base)
        recs = []
        for case in self._case_folders(base):
            patient = "_".join(case.name.split("_")[:3])
            images = sorted(
                (p for p in case.glob("*.tif") if not p.stem.endswith("_mask")), key=_slice_number
            )
            masks = [p.with_name(p.stem + "_mask.tif") for p in images]
            for image, mask in zip(images, masks, strict=True):
                if not mask.is_file():
                    raise DataError(
                        f"{image} has no mask {mask.name}; the download is incomplete, "
                        "re-download the LGG set"
                    )
            tumor = cached_facts(
                "lgg-v1", masks, lambda masks=masks: [bool(read_mask(m).any()) for m in masks]
            )
            for image, mask, has_tumor in zip(images, masks, tumor, strict=True):
                recs.append(
                    Record(
                        path=str(image),
                        patient_id=patient,
                        label=int(has_tumor),
                        mask_path=str(mask),
                        extra={
                            "clinical": clinical.get(patient, {}),
                            "case": case.name,
                            "slice_number": _slice_number(image),
                        },
                    )
                )
        self._records = self._nonempty(recs, base, self.layout_hint)
        return list(self._records)

    def load(self, rec: Record) -> dict[str, Any]:
        image = read_image(rec.path)
        if image.shape[0] != 3:
            raise DataError(
                f"{rec.path} has {image.shape[0]} channel(s); LGG slices are 3-channel TIFFs"
            )
        mask = read_mask(rec.mask_path or rec.path)
        if self.options["normalize"] == "volume":
            image = apply_volume_scale(image, np.asarray(self._volume_scale(rec)))
        return self._sample(rec, image, mask)

    def _volume_scale(self, rec: Record) -> list[float]:
        """Per-channel 99th percentile of the record's case (cached on disk)."""
        case = Path(rec.path).parent
        if case.name not in self._scales:
            files = sorted(p for p in case.glob("*.tif") if not p.stem.endswith("_mask"))
            self._scales[case.name] = cached_facts(
                "lgg-p99-v1",
                files,
                lambda: volume_scale(np.stack([read_image(f) for f in files])).tolist(),
            )
        return self._scales[case.name]


NORMALIZE = ("slice", "volume")
