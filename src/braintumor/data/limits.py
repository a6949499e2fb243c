"""Checks on a file's header and values, made before (or right after) decoding.

A 140 KB PNG can declare 12000 x 12000 pixels and a 900 KB TIFF 30000 x 30000: decoded,
they take gigabytes. Every reader in :mod:`braintumor.data.io` therefore reads the
declared size first and refuses a file above the limit *before* decoding it. The limits
are configurable: ``BRAINTUMOR_MAX_PIXELS`` / ``BRAINTUMOR_MAX_VOXELS`` for the command
line, ``serve --max-pixels`` / ``--max-voxels`` for the service (which passes them to the
readers explicitly).

The same module rejects what decodes but cannot be an MRI scan: complex values, images
without a single finite value, empty (0 x 0) images and NIfTI affines that cannot map a
voxel to millimetres (NaN or singular).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from braintumor.errors import ConfigError, DataError

# 8192 x 8192: far above any MRI slice (<= 1024 px), far below a bomb's gigabytes.
DEFAULT_MAX_PIXELS = 8192 * 8192
# 512^3 voxels (512 MB as float32): above any clinical MRI volume.
DEFAULT_MAX_VOXELS = 512**3

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "TooLargeError",
    "DEFAULT_MAX_VOXELS",
    "check_affine",
    "check_dtype",
    "check_finite",
    "check_pixels",
    "check_voxels",
    "max_pixels",
    "max_voxels",
    "pixel_count",
]


class TooLargeError(DataError):
    """The file declares more pixels or voxels than the limit (the service answers 413)."""


def _env_limit(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} is not a positive number of pixels (e.g. {default})")
    return value


def max_pixels(limit: int | None = None) -> int:
    """``limit`` if given, else ``$BRAINTUMOR_MAX_PIXELS``, else :data:`DEFAULT_MAX_PIXELS`."""
    return (
        int(limit) if limit is not None else _env_limit("BRAINTUMOR_MAX_PIXELS", DEFAULT_MAX_PIXELS)
    )


def max_voxels(limit: int | None = None) -> int:
    """``limit`` if given, else ``$BRAINTUMOR_MAX_VOXELS``, else :data:`DEFAULT_MAX_VOXELS`."""
    return (
        int(limit) if limit is not None else _env_limit("BRAINTUMOR_MAX_VOXELS", DEFAULT_MAX_VOXELS)
    )


def pixel_count(shape: Sequence[int]) -> int:
    """Pixels of a declared shape, not counting a small channel axis (RGB, RGBA, ...)."""
    dims = [int(d) for d in shape]
    if len(dims) == 3 and dims[-1] <= 4:
        dims = dims[:-1]
    elif len(dims) == 3 and dims[0] <= 4:
        dims = dims[1:]
    return math.prod(dims)


def _dims(shape: Sequence[int]) -> str:
    return " x ".join(str(int(d)) for d in shape)


def check_pixels(path: Path, shape: Sequence[int], limit: int | None = None) -> None:
    """Refuse an empty image or one that declares more than ``limit`` pixels."""
    if not shape or any(int(d) <= 0 for d in shape):
        raise DataError(
            f"{path}: the header declares an empty image ({_dims(shape)}); re-export it"
        )
    cap = max_pixels(limit)
    n = pixel_count(shape)
    if n > cap:
        raise TooLargeError(
            f"{path}: image of {_dims(shape)} ({n:,} pixels) exceeds the limit of {cap:,} "
            "pixels (a decompression bomb or a wrong file); downsample it, or raise the "
            "limit with BRAINTUMOR_MAX_PIXELS (serve: --max-pixels)"
        )


def check_voxels(path: Path, shape: Sequence[int], limit: int | None = None) -> None:
    """Refuse an empty volume or one that declares more than ``limit`` voxels."""
    if not shape or any(int(d) <= 0 for d in shape):
        raise DataError(
            f"{path}: the header declares an empty volume ({_dims(shape)}); re-export it"
        )
    cap = max_voxels(limit)
    n = math.prod(int(d) for d in shape)
    if n > cap:
        raise TooLargeError(
            f"{path}: volume of {_dims(shape)} ({n:,} voxels) exceeds the limit of {cap:,} "
            "voxels; crop or resample it, or raise the limit with BRAINTUMOR_MAX_VOXELS "
            "(serve: --max-voxels)"
        )


def check_dtype(path: Path, dtype: np.dtype | str) -> None:
    """Refuse complex-valued data (k-space or phase images are not magnitude scans)."""
    dt = np.dtype(dtype)
    if dt.kind == "c":
        raise DataError(
            f"{path}: holds complex values ({dt}), not a magnitude image; save the "
            "magnitude (abs) as a real-valued file"
        )
    if dt.kind not in "biuf":
        raise DataError(f"{path}: pixel type {dt} is not numeric; save it as integers or floats")


def check_finite(path: Path, a: np.ndarray) -> None:
    """Refuse data without one finite value (all NaN/inf gives meaningless predictions)."""
    if a.size and np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).any():
        raise DataError(f"{path}: every value is NaN or infinite; the file holds no image")


def check_affine(path: Path, affine: np.ndarray) -> None:
    """Refuse a voxel-to-mm affine with NaN/inf entries or no inverse (zero voxel size)."""
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4) or not np.isfinite(a).all():
        raise DataError(
            f"{path}: the NIfTI affine (sform/qform) is not finite; fix the header "
            "(e.g. nibabel: img.set_sform(np.eye(4))) or re-export the volume"
        )
    if abs(np.linalg.det(a[:3, :3])) < 1e-12:
        raise DataError(
            f"{path}: the NIfTI affine is singular (a zero voxel size, pixdim or sform "
            "column); fix the header or re-export the volume"
        )
