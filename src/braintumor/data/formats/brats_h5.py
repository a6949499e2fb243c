"""The Kaggle "BraTS2020 Training Data" slice files (``volume_<v>_slice_<s>.h5``)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from braintumor.data.base import DatasetFormat, Record
from braintumor.data.formats._index import cached_facts
from braintumor.data.registry import FORMATS
from braintumor.errors import ConfigError, DataError

_NAME = re.compile(r"^volume_(\d+)_slice_(\d+)\.h5$")


def _read(path: str | Path, key: str) -> np.ndarray:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if key not in f:
                raise DataError(f"{path} has no {key!r} dataset; is it a Kaggle BraTS2020 slice?")
            return np.asarray(f[key])
    except DataError:
        raise
    except Exception as exc:  # OSError for truncated/corrupt HDF5
        raise DataError(f"{path}: cannot read HDF5 ({exc}); re-download the file") from None


def _channels_first(a: np.ndarray, path: str | Path, what: str, channels: int) -> np.ndarray:
    if a.ndim != 3 or a.shape[-1] != channels:
        raise DataError(f"{path}: {what} has shape {a.shape}; expected H x W x {channels}")
    return np.ascontiguousarray(np.moveaxis(a, -1, 0))


@FORMATS.register()
class BraTSH5Format(DatasetFormat):
    """``<root>/**/volume_<v>_slice_<s>.h5``, each with ``image`` (240x240x4 float)
    and ``mask`` (240x240x3 uint8), channels last; loaded as C x H x W.

    The mask channels are, in the Kaggle set's order, NCR (necrotic/non-enhancing
    core), ED (edema), ET (enhancing tumour). The publisher does not document the
    order of the four image channels, so they are passed through as stored.
    Patient = the volume number ``v``.

    Options:
        normalize: ``"volume"`` z-scores each channel inside the brain (nonzero
            pixels) with statistics over all slices of the volume (computed on first
            use, kept in memory), like the ``brats`` format; ``"none"`` keeps the
            stored values.
        skip_empty: ``"none"`` or ``"tumor"`` (only slices whose mask has a pixel).

    Classification: ``["no_tumor", "tumor"]`` from the mask, read once per volume
    when indexing and cached on disk (the first index of the full set reads every
    mask, ~170 KB per slice).
    """

    name = "brats-h5"
    intensity = "zscore"
    description = "Kaggle BraTS2020 slice files volume_<v>_slice_<s>.h5 (image HxWx4, mask HxWx3)"
    tasks = ("classification", "segmentation")
    default_options: dict[str, Any] = {"normalize": "volume", "skip_empty": "none"}
    layout_hint = "<root>/**/volume_<v>_slice_<s>.h5"

    def __init__(self, root: str | Path | None = None, **options: Any) -> None:
        super().__init__(root, **options)
        if self.options["normalize"] not in ("volume", "none"):
            raise ConfigError(
                f"brats-h5 option normalize={self.options['normalize']!r}; use 'volume' or 'none'"
            )
        if self.options["skip_empty"] not in ("none", "tumor"):
            raise ConfigError(
                f"brats-h5 option skip_empty={self.options['skip_empty']!r}; use 'none' or 'tumor'"
            )
        self._stats: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}

    @property
    def classes(self) -> list[str]:
        return ["no_tumor", "tumor"]

    @property
    def mask_channels(self) -> list[str]:
        return ["NCR", "ED", "ET"]

    @property
    def natural_channels(self) -> int:
        return 4

    def _volumes(self) -> dict[str, list[tuple[int, Path]]]:
        assert self.root is not None
        if not self.root.is_dir():
            raise DataError(f"{self.root} is not a folder; expected {self.layout_hint}")
        volumes: dict[str, list[tuple[int, Path]]] = defaultdict(list)
        for p in self.root.rglob("volume_*_slice_*.h5"):
            m = _NAME.match(p.name)
            if m:
                volumes[m.group(1)].append((int(m.group(2)), p))
        return {v: sorted(volumes[v]) for v in sorted(volumes, key=int)}

    def records(self) -> list[Record]:
        recs = []
        for volume, slices in self._volumes().items():
            files = [p for _, p in slices]
            tumor = cached_facts(
                "brats-h5-v1",
                files,
                lambda files=files: [bool(_read(f, "mask").any()) for f in files],
            )
            for (s, path), has_tumor in zip(slices, tumor, strict=True):
                if self.options["skip_empty"] == "tumor" and not has_tumor:
                    continue
                recs.append(
                    Record(
                        path=str(path),
                        patient_id=volume,
                        label=int(has_tumor),
                        extra={"volume": int(volume), "slice_number": s},
                    )
                )
        return self._nonempty(recs, self.root, self.layout_hint)

    def _volume_stats(self, path: Path, volume: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and std over the nonzero pixels of all slices of a volume."""
        key = (str(path.parent), volume)
        if key not in self._stats:
            n = np.zeros(4)
            s1 = np.zeros(4)
            s2 = np.zeros(4)
            for f in path.parent.glob(f"volume_{volume}_slice_*.h5"):
                img = _channels_first(_read(f, "image"), f, "image", 4).astype(np.float64)
                brain = img != 0
                n += brain.sum(axis=(1, 2))
                s1 += np.where(brain, img, 0).sum(axis=(1, 2))
                s2 += np.where(brain, img * img, 0).sum(axis=(1, 2))
            mean = s1 / np.maximum(n, 1)
            std = np.sqrt(np.maximum(s2 / np.maximum(n, 1) - mean**2, 0))
            self._stats[key] = (mean, np.where(std > 0, std, 1.0))
        return self._stats[key]

    def load(self, rec: Record) -> dict[str, Any]:
        path = Path(rec.path)
        image = _channels_first(_read(path, "image"), path, "image", 4).astype(np.float32)
        mask = _channels_first(_read(path, "mask"), path, "mask", 3)
        if self.options["normalize"] == "volume":
            mean, std = self._volume_stats(path, rec.patient_id)
            brain = image != 0
            z = (image - mean[:, None, None]) / std[:, None, None]
            image = np.where(brain, z, 0).astype(np.float32)
        return self._sample(rec, image, mask)
