"""``SliceDataset``: preprocessed 2D samples of any format, cached on disk.

Decoding and resizing are done once: the prepared arrays (images as float16,
masks as uint8, labels) are written to a cache folder keyed by everything that
determines them (format, root, options, record keys, source file sizes and
mtimes, geometry, :data:`CACHE_VERSION`). Later epochs, workers and runs read
them through memory maps and never decode an image again. A cache is built in a
temporary folder and renamed into place, so an interrupted run never leaves a
half-written cache behind.

The cache's key, location and array helpers are in :mod:`braintumor.data.cache`.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from braintumor.data import preprocess
from braintumor.data.base import DatasetFormat, Record
from braintumor.data.cache import (
    CACHE_VERSION,
    MEMORY_SHARE,
    PROGRESS_MIN,
    _alloc,
    _fits_in_memory,
    _progress,
    cache_key,
    cache_root,
)
from braintumor.data.stacking import neighbour_index, stack_neighbours
from braintumor.errors import DataError

__all__ = [
    "CACHE_VERSION",
    "MEMORY_SHARE",
    "PROGRESS_MIN",
    "SliceDataset",
    "cache_key",
    "cache_root",
    "collate",
]

_F16_MAX = 65000.0  # cached images are float16


class SliceDataset(Dataset):
    """Torch dataset of prepared samples (see the data contract in ARCHITECTURE.md).

    Items: ``image`` FloatTensor C x H x W, ``mask`` FloatTensor K x H x W (only when
    the format has mask channels), ``label`` LongTensor, ``patient_id``, ``path``.
    ``transform`` (if given) is applied to that dict.

    Args:
        fmt: the data set format that loads the records.
        records: the samples to include (e.g. one split).
        image_size, channels, crop: passed to :func:`preprocess.prepare_sample`.
        cache_dir: cache folder (default: ``$BRAINTUMOR_CACHE`` or ``~/.cache/braintumor``).
        transform: augmentation applied to each item dict.
        cache: False keeps the prepared arrays in memory only.
        neighbours: 2.5D input: append the FLAIR (channel ``fmt.flair_channel``) of the
            ``neighbours`` slices on either side (see :mod:`braintumor.data.stacking`).
    """

    def __init__(
        self,
        fmt: DatasetFormat,
        records: Iterable[Record],
        image_size: int,
        channels: int | None,
        crop: bool,
        cache_dir: str | Path | None = None,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        cache: bool = True,
        neighbours: int = 0,
    ) -> None:
        self.fmt = fmt
        self.records = list(records)
        if not self.records:
            raise DataError(f"no samples given to the {fmt.name!r} dataset; check the split")
        self.neighbours = neighbour_index(self.records, neighbours) if neighbours > 0 else None
        self.image_size, self.channels, self.crop = image_size, channels, crop
        self.transform = transform
        self.classes = list(fmt.classes)
        self.mask_channels = list(fmt.mask_channels)
        self.cache_path: Path | None = None
        self._images: np.ndarray | None = None
        self._masks: np.ndarray | None = None
        if cache:
            key = cache_key(fmt, self.records, image_size, channels, crop)
            self.cache_path = cache_root(cache_dir) / f"{fmt.name}-{key}"
            if not self._valid(self.cache_path):
                self._build(self.cache_path)
            self._open()
        else:
            self._images, self._masks, self.labels = self._prepare_all(None)

    # --- building -----------------------------------------------------------------
    def _prepare_all(self, folder: Path | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Load and prepare every record into arrays (memory maps inside ``folder``)."""
        n, k = len(self.records), len(self.mask_channels)
        images = masks = None
        labels = np.empty(n, dtype=np.int64)
        for i, rec in enumerate(_progress(self.records, f"preparing {self.fmt.name}")):
            with preprocess.one_thread():
                s = preprocess.prepare_sample(
                    self.fmt.load(rec), self.image_size, self.channels, self.crop
                )
            img = s["image"]
            if images is None:
                shape = (n, *img.shape)
                images = _alloc(folder, "images", shape, np.float16)
                if k:
                    masks = _alloc(folder, "masks", (n, k, *img.shape[1:]), np.uint8)
            elif img.shape != images.shape[1:]:
                raise DataError(
                    f"{rec.key} prepares to {img.shape[0]} channel(s) but earlier samples to "
                    f"{images.shape[1]}; set data.channels to a fixed count (1 or 3)"
                )
            if not np.isfinite(img).all() or np.abs(img).max() > _F16_MAX:
                raise DataError(
                    f"{rec.key} has intensities that are not finite or beyond +-{_F16_MAX:g}; "
                    "the cache stores float16, so the format must scale them (e.g. /255)"
                )
            images[i] = img
            if masks is not None:
                if s["mask"] is not None and s["mask"].shape[0] != k:
                    raise DataError(
                        f"mask of {rec.key} has {s['mask'].shape[0]} channel(s); "
                        f"format {self.fmt.name!r} declares {k}"
                    )
                masks[i] = 0 if s["mask"] is None else s["mask"]
            labels[i] = int(s["label"])
        assert images is not None  # records is not empty
        return images, masks, labels

    def _build(self, final: Path) -> None:
        tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
        except OSError as exc:
            raise DataError(
                f"cannot create the preprocessing cache in {final.parent} ({exc.strerror}); "
                "set data.cache_dir (or $BRAINTUMOR_CACHE) to a writable folder, "
                "or data.cache=false"
            ) from None
        try:
            images, masks, labels = self._prepare_all(tmp)
            shape, has_mask = list(images.shape), masks is not None
            for arr in (images, masks):
                if isinstance(arr, np.memmap):
                    arr.flush()
            del images, masks
            np.save(tmp / "labels.npy", labels)
            meta = {
                "version": CACHE_VERSION,
                "format": self.fmt.name,
                "n": len(self.records),
                "image_shape": shape,
                "masks": has_mask,
                "keys": [r.key for r in self.records],
            }
            (tmp / "meta.json").write_text(json.dumps(meta))  # written last: marks completion
            if self._valid(final):  # another process (e.g. a DDP rank) finished first
                shutil.rmtree(tmp, ignore_errors=True)
                return
            if final.exists():  # a damaged leftover
                shutil.rmtree(final, ignore_errors=True)
            try:
                os.replace(tmp, final)
            except OSError:  # another process finished the same cache first: use theirs
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _valid(self, folder: Path) -> bool:
        try:
            meta = json.loads((folder / "meta.json").read_text())
            ok = meta["n"] == len(self.records) and meta["version"] == CACHE_VERSION
            ok = ok and (folder / "images.npy").is_file() and (folder / "labels.npy").is_file()
            return bool(ok and (not self.mask_channels or (folder / "masks.npy").is_file()))
        except (OSError, ValueError, KeyError):
            return False

    def _open(self) -> None:
        assert self.cache_path is not None
        self._images = np.load(self.cache_path / "images.npy", mmap_mode="r")
        if self.mask_channels:
            self._masks = np.load(self.cache_path / "masks.npy", mmap_mode="r")
        self.labels = np.load(self.cache_path / "labels.npy")
        if len(self._images) != len(self.records):
            raise DataError(f"cache {self.cache_path} is inconsistent; delete it and rerun")
        nbytes = self._images.nbytes + (0 if self._masks is None else self._masks.nbytes)
        # Held in RAM: a batch is then one fancy-indexing copy, not page faults per item.
        # Not in DataLoader workers: each would hold its own copy (memory maps share pages).
        if get_worker_info() is None and _fits_in_memory(nbytes):
            self._images = np.ascontiguousarray(self._images)
            if self._masks is not None:
                self._masks = np.ascontiguousarray(self._masks)

    # --- Dataset ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self._images is None:  # a worker process: reopen the memory maps
            self._open()
        assert self._images is not None
        rec = self.records[index]
        image = np.asarray(self._images[index], dtype=np.float32)
        if self.neighbours is not None:
            near = [self._images[j] for j in self.neighbours[index]]
            image = stack_neighbours(image, near, self.fmt.flair_channel)
        item: dict[str, Any] = {
            "image": torch.from_numpy(image),
            "label": torch.tensor(int(self.labels[index]), dtype=torch.long),
            "patient_id": rec.patient_id,
            "path": rec.key,
        }
        if self._masks is not None:
            item["mask"] = torch.from_numpy(np.asarray(self._masks[index], dtype=np.float32))
        return self.transform(item) if self.transform is not None else item

    def __getitems__(self, indices: list[int]) -> dict[str, Any] | list[dict[str, Any]]:
        """A whole batch at once (used by ``DataLoader``; see :func:`collate`).

        Without a transform the batch is built by indexing the cached arrays once,
        which skips per-item tensors and collation; with one (or with 2.5D
        neighbours), items are built one by one (random parameters differ per item) and
        collated as usual.
        """
        if self.transform is not None or self.neighbours is not None:
            return [self[i] for i in indices]
        if self._images is None:
            self._open()
        assert self._images is not None
        idx = np.asarray(indices, dtype=np.int64)
        batch: dict[str, Any] = {
            "image": torch.from_numpy(self._images[idx].astype(np.float32)),
            "label": torch.from_numpy(np.asarray(self.labels[idx], dtype=np.int64)),
            "patient_id": [self.records[i].patient_id for i in indices],
            "path": [self.records[i].key for i in indices],
        }
        if self._masks is not None:
            batch["mask"] = torch.from_numpy(self._masks[idx].astype(np.float32))
        return batch

    def has_tumor(self) -> np.ndarray:
        """Per sample: the mask has a positive pixel (no masks: the label is > 0)."""
        if self._images is None and self.cache_path is not None:
            self._open()
        if self._masks is None:
            return np.asarray(self.labels) > 0
        return np.array([bool(np.asarray(m).any()) for m in self._masks])

    def __getstate__(self) -> dict[str, Any]:
        # Memory maps are reopened in each worker instead of being pickled whole.
        state = dict(self.__dict__)
        if self.cache_path is not None:
            state["_images"] = state["_masks"] = None
        return state


def collate(batch: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    """``DataLoader`` collate for :meth:`SliceDataset.__getitems__`: a built batch passes."""
    if isinstance(batch, dict):
        return batch
    from torch.utils.data import default_collate

    return default_collate(batch)  # type: ignore[no-any-return]
