"""BraTS NIfTI cases as 2D axial slices with the four MRI sequences as channels."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from braintumor.data.base import DatasetFormat, Record
from braintumor.data.formats._index import cached_facts
from braintumor.data.intensity import zscore_brain
from braintumor.data.io import read_volume
from braintumor.data.registry import FORMATS
from braintumor.errors import ConfigError, DataError

MODALITIES = ("flair", "t1", "t1ce", "t2")  # channel order of every BraTS sample
# File suffixes per sequence: BraTS 2018-2021 names first, then BraTS 2023+ names.
_SUFFIXES = {
    "flair": ("flair", "t2f"),
    "t1": ("t1", "t1n"),
    "t1ce": ("t1ce", "t1c"),
    "t2": ("t2", "t2w"),
    "seg": ("seg",),
}
_ET = {2021: 4, 2023: 3}  # enhancing-tumour label per convention
_CACHED_CASES = 2  # volumes kept decoded: slices are usually read case by case


def find_case_files(case: Path) -> dict[str, Path]:
    """Sequence name -> file for one case folder (only the sequences present)."""
    found: dict[str, Path] = {}
    for key, suffixes in _SUFFIXES.items():
        for suffix in suffixes:
            hits = [
                p
                for ext in (".nii.gz", ".nii")
                for sep in ("_", "-")
                for p in case.glob(f"*{sep}{suffix}{ext}")
            ]
            if hits:
                found[key] = sorted(hits)[0]
                break
    return found


@FORMATS.register()
class BraTSFormat(DatasetFormat):
    """``<root>/<case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz`` (or ``.nii``; BraTS 2023
    names ``t2f, t1n, t1c, t2w`` work too); ``root`` may also be one case folder.

    Every axial slice ``z`` is a sample: image 4 x H x W with channels in the order
    **flair, t1, t1ce, t2**, H x W = ``volume[:, :, z].T`` (anterior up for BraTS).
    Each sequence is z-scored inside the brain (its nonzero voxels) once per volume;
    the last decoded cases are kept in memory.

    Options:
        target: ``"regions"`` -> mask channels WT, TC, ET (the BraTS evaluation
            regions) or ``"labels"`` -> NCR, ED, ET (the annotated labels).
        label_convention: 2021 (ET = label 4, up to BraTS 2021) or 2023 (ET = 3).
        skip_empty: ``"none"`` keeps every slice, ``"brain"`` drops slices without
            brain (from the FLAIR volume), ``"tumor"`` keeps only slices with tumor.

    Classification: ``["no_tumor", "tumor"]``, label = the slice has any tumor label.
    Patient = case folder name. The per-slice flags are indexed once per case and
    cached on disk, so later ``records()`` calls do not decode the volumes.
    """

    name = "brats"
    intensity = "zscore"
    description = "BraTS NIfTI cases <case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz as 2D slices"
    tasks = ("classification", "segmentation")
    default_options: dict[str, Any] = {
        "target": "regions",
        "label_convention": 2021,
        "skip_empty": "brain",
    }
    layout_hint = "<root>/<case>/<case>_{flair,t1,t1ce,t2,seg}.nii.gz"

    def __init__(self, root: str | Path | None = None, **options: Any) -> None:
        super().__init__(root, **options)
        o = self.options
        if o["target"] not in ("regions", "labels"):
            raise ConfigError(f"brats option target={o['target']!r}; use 'regions' or 'labels'")
        if str(o["label_convention"]) not in ("2021", "2023"):
            raise ConfigError(
                f"brats option label_convention={o['label_convention']!r}; use 2021 (ET=4) "
                "or 2023 (ET=3)"
            )
        o["label_convention"] = int(o["label_convention"])
        if o["skip_empty"] not in ("none", "brain", "tumor"):
            raise ConfigError(
                f"brats option skip_empty={o['skip_empty']!r}; use 'none', 'brain' or 'tumor'"
            )
        self._volumes: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        # Data loader workers get a copy of the format: send it without decoded volumes.
        state = self.__dict__.copy()
        state["_volumes"] = OrderedDict()
        return state

    # --- what the data set is -------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        return ["no_tumor", "tumor"]

    @property
    def mask_channels(self) -> list[str]:
        return ["WT", "TC", "ET"] if self.options["target"] == "regions" else ["NCR", "ED", "ET"]

    @property
    def natural_channels(self) -> int:
        return 4

    # --- indexing -----------------------------------------------------------------
    def cases(self) -> list[Path]:
        """Case folders under ``root`` (or ``root`` itself if it is a case)."""
        assert self.root is not None
        if not self.root.is_dir():
            raise DataError(f"{self.root} is not a folder; expected {self.layout_hint}")
        if "flair" in find_case_files(self.root):
            return [self.root]
        return sorted(
            p
            for p in self.root.iterdir()
            if p.is_dir() and not p.name.startswith(".") and "flair" in find_case_files(p)
        )

    def _files(self, case: Path) -> dict[str, Path]:
        files = find_case_files(case)
        missing = [k for k in (*MODALITIES, "seg") if k not in files]
        if missing:
            raise DataError(
                f"case {case} has no {missing[0]} file; expected {case.name}_{missing[0]}.nii.gz"
            )
        return files

    def _check_labels(self, seg_path: Path, labels: list[int]) -> None:
        et = _ET[self.options["label_convention"]]
        bad = sorted(set(labels) - {0, 1, 2, et})
        if bad:
            other = 2023 if et == 4 else 2021
            raise DataError(
                f"{seg_path} has label(s) {bad}, not valid with label_convention="
                f"{self.options['label_convention']} (labels 0, 1, 2, {et}); "
                f"set data.options.label_convention={other} if this is that convention"
            )

    def _flags(self, files: dict[str, Path]) -> dict[str, list]:
        def compute() -> dict[str, list]:
            seg, _, _ = read_volume(files["seg"])
            flair, _, _ = read_volume(files["flair"])
            if seg.shape != flair.shape:
                raise DataError(
                    f"{files['seg']} is {seg.shape} but {files['flair'].name} is {flair.shape}; "
                    "every sequence of a case must have the same shape"
                )
            return {
                "labels": [int(v) for v in np.unique(seg)],
                "tumor": [bool(v) for v in (seg > 0).any(axis=(0, 1))],
                "brain": [bool(v) for v in (flair != 0).any(axis=(0, 1))],
            }

        return cached_facts("brats-v1", [files["seg"], files["flair"]], compute)

    def records(self) -> list[Record]:
        recs = []
        keep = self.options["skip_empty"]
        for case in self.cases():
            files = self._files(case)
            flags = self._flags(files)
            self._check_labels(files["seg"], flags["labels"])
            for z, (tumor, brain) in enumerate(zip(flags["tumor"], flags["brain"], strict=True)):
                if (keep == "brain" and not brain) or (keep == "tumor" and not tumor):
                    continue
                recs.append(
                    Record(
                        path=str(case),
                        patient_id=case.name,
                        label=int(tumor),
                        extra={"slice": z, "tumor": tumor, "brain": brain},
                    )
                )
        return self._nonempty(recs, self.root, self.layout_hint)

    # --- loading ------------------------------------------------------------------
    def _volume(self, case: Path) -> tuple[np.ndarray, np.ndarray]:
        """(Z x 4 x H x W z-scored images, Z x H x W labels) for one case, cached."""
        key = str(case)
        if key in self._volumes:
            self._volumes.move_to_end(key)
            return self._volumes[key]
        files = self._files(case)
        seg, _, _ = read_volume(files["seg"])
        channels = []
        for name in MODALITIES:
            vol, _, _ = read_volume(files[name])
            if vol.shape != seg.shape:
                raise DataError(
                    f"{files[name]} is {vol.shape} but {files['seg'].name} is {seg.shape}; "
                    "every sequence of a case must have the same shape"
                )
            channels.append(zscore_brain(vol).transpose(2, 1, 0))  # Z x Y x X
        images = np.ascontiguousarray(np.stack(channels, axis=1))
        labels = np.rint(seg).astype(np.uint8).transpose(2, 1, 0).copy()
        self._check_labels(files["seg"], [int(v) for v in np.unique(labels)])
        self._volumes[key] = (images, labels)
        while len(self._volumes) > _CACHED_CASES:
            self._volumes.popitem(last=False)
        return images, labels

    def load(self, rec: Record) -> dict[str, Any]:
        images, labels = self._volume(Path(rec.path))
        z = int(rec.extra["slice"])
        if not 0 <= z < images.shape[0]:
            raise DataError(f"{rec.path} has {images.shape[0]} slices; slice {z} does not exist")
        seg = labels[z]
        et = seg == _ET[self.options["label_convention"]]
        if self.options["target"] == "regions":
            mask = np.stack([seg > 0, (seg == 1) | et, et])
        else:
            mask = np.stack([seg == 1, seg == 2, et])
        return self._sample(rec, images[z], mask.astype(np.uint8))
