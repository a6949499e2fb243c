"""Cheng et al.'s Figshare brain tumor set (PLoS ONE 2015): 3,064 T1-CE slices, 233
patients, as MATLAB v7.3 ``.mat`` files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from braintumor.data.base import DatasetFormat, Record
from braintumor.data.formats._index import cached_facts
from braintumor.data.intensity import robust_scale
from braintumor.data.registry import FORMATS
from braintumor.errors import DataError

# Files shipped with the set that are not samples (the 5-fold split indices).
NOT_SAMPLES = frozenset({"cvind.mat"})


def _read(path: str | Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Datasets ``cjdata/<key>`` of one file. MATLAB v7.3 files are HDF5 (h5py never
    unpickles); MATLAB is column-major, so 2D arrays come out transposed."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "cjdata" not in f:
                raise DataError(
                    f"{path} has no 'cjdata' struct; is it a Figshare brain tumor file?"
                )
            missing = [k for k in keys if k not in f["cjdata"]]
            if missing:
                raise DataError(f"{path}: cjdata has no field {missing[0]!r}; re-download it")
            return {k: np.asarray(f["cjdata"][k]) for k in keys}
    except DataError:
        raise
    except Exception as exc:  # OSError: not HDF5 (MATLAB v5 file), truncated, corrupt
        raise DataError(
            f"{path}: cannot read as MATLAB v7.3/HDF5 ({exc}); the Figshare files are v7.3, "
            "re-download the file"
        ) from None


def _pid(chars: np.ndarray) -> str:
    """MATLAB char arrays are stored as uint16 code units."""
    return "".join(chr(int(c)) for c in chars.ravel() if int(c) != 0).strip()


@FORMATS.register()
class FigshareFormat(DatasetFormat):
    """``<root>/**/<n>.mat``, each with ``cjdata.image`` (512x512 int16),
    ``cjdata.label`` (1 meningioma, 2 glioma, 3 pituitary), ``cjdata.PID`` and
    ``cjdata.tumorMask``.

    Classes ``["meningioma", "glioma", "pituitary"]`` (label = ``cjdata.label - 1``,
    the original numbering, not alphabetical). Patient = ``PID``: 233 patients with
    several slices each, so split by patient. Images are scaled to [0, 1] by a robust
    min/max; masks give one channel, ``"tumor"``. Labels and PIDs are read once when
    indexing and cached on disk.
    """

    name = "figshare"
    description = (
        "Figshare brain tumor (Cheng et al.): <n>.mat v7.3 with cjdata image/label/PID/mask"
    )
    tasks = ("classification", "segmentation")
    layout_hint = "<root>/**/<n>.mat (MATLAB v7.3 files with a cjdata struct)"

    @property
    def classes(self) -> list[str]:
        return ["meningioma", "glioma", "pituitary"]

    @property
    def mask_channels(self) -> list[str]:
        return ["tumor"]

    def _files(self) -> list[Path]:
        assert self.root is not None
        if self.root.is_file():
            return [self.root]
        return sorted(
            (p for p in self.root.rglob("*.mat") if p.name.lower() not in NOT_SAMPLES),
            key=lambda p: (str(p.parent), int(p.stem) if p.stem.isdigit() else 0, p.name),
        )

    def records(self) -> list[Record]:
        files = self._files()

        def index() -> list[list[Any]]:
            out = []
            for f in files:
                d = _read(f, ("label", "PID"))
                out.append([int(np.asarray(d["label"]).ravel()[0]), _pid(d["PID"])])
            return out

        facts = cached_facts("figshare-v1", files, index) if files else []
        recs = []
        for f, (label, pid) in zip(files, facts, strict=True):
            if label not in (1, 2, 3):
                raise DataError(f"{f}: cjdata.label is {label}; expected 1, 2 or 3")
            recs.append(Record(path=str(f), patient_id=pid, label=label - 1, mask_path=str(f)))
        return self._nonempty(recs, self.root, self.layout_hint)

    def load(self, rec: Record) -> dict[str, Any]:
        d = _read(rec.path, ("image", "tumorMask"))
        image, mask = d["image"], d["tumorMask"]
        if image.ndim != 2:
            raise DataError(f"{rec.path}: cjdata.image has shape {image.shape}; expected 2D")
        return self._sample(rec, robust_scale(image.T), (mask.T > 0).astype(np.uint8))
