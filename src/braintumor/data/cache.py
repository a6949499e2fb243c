"""The disk cache of :class:`~braintumor.data.dataset.SliceDataset`: where it lives,
what names it, and the helpers that fill and hold it.

A cache folder is keyed (:func:`cache_key`) by everything that determines the
prepared arrays: format, root, options, record keys, source file sizes and mtimes,
geometry and :data:`CACHE_VERSION`. Arrays are written as ``.npy`` memory maps
(:func:`_alloc`) and held in RAM when they fit (:func:`_fits_in_memory`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from braintumor.data.base import DatasetFormat, Record

CACHE_VERSION = 1  # bump when preprocessing changes what a cached array holds
PROGRESS_MIN = 200  # show a progress bar when preparing at least this many samples


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$BRAINTUMOR_CACHE``, else ``~/.cache/braintumor``."""
    chosen = cache_dir or os.environ.get("BRAINTUMOR_CACHE") or "~/.cache/braintumor"
    return Path(chosen).expanduser()


def _stamp(records: list[Record]) -> list[list[Any]]:
    """Size and mtime of every distinct source file, so edited data invalidates the cache."""
    out = []
    for path in dict.fromkeys(p for r in records for p in (r.path, r.mask_path) if p):
        try:
            st = os.stat(path)
        except OSError:  # not a local file (e.g. synthetic://): its key says it all
            continue
        out.append([path, st.st_size, st.st_mtime_ns])
    return out


def cache_key(
    fmt: DatasetFormat, records: list[Record], image_size: int, channels: int | None, crop: bool
) -> str:
    """Hash of everything that determines the prepared arrays."""
    ident = {
        "format": fmt.name,
        "root": str(fmt.root) if fmt.root is not None else None,
        "options": fmt.options,
        "keys": [r.key for r in records],
        "files": _stamp(records),
        "geometry": [image_size, channels, bool(crop)],
        "version": CACHE_VERSION,
    }
    blob = json.dumps(ident, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


# Hold a cache in RAM when it takes at most this share of the memory still available.
MEMORY_SHARE = 0.25


def _fits_in_memory(nbytes: int) -> bool:
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: stay on disk
        return False
    return nbytes <= MEMORY_SHARE * available


def _alloc(folder: Path | None, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    if folder is None:
        return np.zeros(shape, dtype=dtype)
    return np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)


def _progress(records: list[Record], what: str) -> Iterable[Record]:
    if len(records) < PROGRESS_MIN:
        return records
    from rich.console import Console
    from rich.progress import track

    return track(
        records, description=f"{what} ({len(records)} samples)", console=Console(stderr=True)
    )
