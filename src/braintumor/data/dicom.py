"""DICOM: single images and series (a folder of 2D slices), with clear errors.

Split from :mod:`braintumor.data.io` (which re-exports :func:`read_dicom_series`).
Header values are parsed lazily by pydicom, so a malformed tag can fail on first
access, long after ``dcmread``: every access here sits inside one guard that turns
such failures into a :class:`~braintumor.errors.DataError`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from braintumor.data.limits import check_pixels, check_voxels
from braintumor.errors import DataError

T = TypeVar("T")


def guarded(path: Path, what: str, fn: Callable[[], T]) -> T:
    """``fn()``, with any parsing failure of a malformed header as one DataError."""
    try:
        return fn()
    except DataError:
        raise
    except Exception as exc:  # pydicom raises ValueError, TypeError, KeyError, ...
        raise DataError(
            f"{path}: malformed DICOM {what} ({type(exc).__name__}: {exc}); the file is "
            "corrupt or not a standard DICOM image"
        ) from None


def _check_dicom_size(path: Path, ds: Any, limit: int | None) -> None:
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    try:
        shape = (frames * int(ds.Rows), int(ds.Columns))
    except (AttributeError, TypeError, ValueError):
        raise DataError(f"{path}: DICOM without Rows/Columns; is it an image?") from None
    check_pixels(path, shape, limit)


def decode_dicom(path: Path, limit: int | None) -> tuple[np.ndarray, Any]:
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        if "PixelData" in ds:
            _check_dicom_size(path, ds, limit)
        pixels = ds.pixel_array
    except DataError:
        raise
    except Exception as exc:
        raise DataError(
            f"{path}: cannot read DICOM pixels ({type(exc).__name__}: {exc}); the file is "
            "corrupt, not DICOM, or compressed (install pylibjpeg or gdcm)"
        ) from None
    return pixels, ds


def dicom_to_float(pixels: np.ndarray, ds: Any) -> np.ndarray:
    """Apply the modality rescale (slope/intercept) and undo MONOCHROME1 inversion."""
    a = pixels.astype(np.float32)
    if str(getattr(ds, "PhotometricInterpretation", "")).startswith("MONOCHROME"):
        a = a * float(getattr(ds, "RescaleSlope", 1) or 1) + float(
            getattr(ds, "RescaleIntercept", 0) or 0
        )
        if ds.PhotometricInterpretation == "MONOCHROME1":  # high value = dark
            a = a.max() - a
    return a


def _dicom_files(root: Path) -> list[Any]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    datasets = []
    for f in sorted(q for q in root.iterdir() if q.is_file() and not q.name.startswith(".")):
        try:
            datasets.append(pydicom.dcmread(f))
        except InvalidDicomError:
            continue  # DICOMDIR siblings, README, thumbnails: not part of the series
        except Exception as exc:
            raise DataError(f"{f}: cannot read DICOM ({type(exc).__name__}: {exc})") from None
    return [d for d in datasets if "PixelData" in d]


def _read_series(
    folder: Path, *, max_voxels: int | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """:func:`read_dicom_series` without the guard around header parsing."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(f"{root}: DICOM series folder not found; check the path")
    slices = _dicom_files(root)
    if not slices:
        raise DataError(f"{root}: no DICOM images found; expected one file per slice")
    series = {str(getattr(d, "SeriesInstanceUID", "")) for d in slices}
    if len(series) > 1:
        raise DataError(
            f"{root}: holds {len(series)} DICOM series; put each series in its own folder"
        )
    first = slices[0]
    cosines = np.asarray(getattr(first, "ImageOrientationPatient", [1, 0, 0, 0, 1, 0]), float)
    row_dir, col_dir = cosines[:3], cosines[3:]
    normal = np.cross(row_dir, col_dir)
    if all(hasattr(d, "ImagePositionPatient") for d in slices):
        slices.sort(key=lambda d: float(np.dot(normal, np.asarray(d.ImagePositionPatient, float))))
    else:
        slices.sort(key=lambda d: int(getattr(d, "InstanceNumber", 0) or 0))
    shape = (int(first.Rows), int(first.Columns))
    check_voxels(root, (*shape, len(slices)), max_voxels)  # before any slice is decoded
    planes = []
    for d in slices:
        if (int(d.Rows), int(d.Columns)) != shape:
            raise DataError(
                f"{root}: slices differ in size ({d.Rows}x{d.Columns} vs {shape[0]}x{shape[1]}); "
                "the folder mixes series"
            )
        try:
            pixels = d.pixel_array
        except Exception as exc:
            raise DataError(
                f"{root}: cannot decode a slice ({exc}); install pylibjpeg or gdcm"
            ) from None
        planes.append(dicom_to_float(pixels, d).T)  # rows x cols -> x (cols) x y (rows)
    volume = np.stack(planes, axis=-1).astype(np.float32)

    ps = [float(v) for v in getattr(first, "PixelSpacing", [1.0, 1.0])]
    positions = [np.asarray(getattr(d, "ImagePositionPatient", [0, 0, 0]), float) for d in slices]
    if len(slices) > 1 and all(hasattr(d, "ImagePositionPatient") for d in slices):
        steps = np.diff([float(np.dot(normal, q)) for q in positions])
        dz = float(np.median(steps)) or float(getattr(first, "SliceThickness", 1.0) or 1.0)
    else:
        dz = float(getattr(first, "SliceThickness", 1.0) or 1.0)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * ps[1]  # x index walks along a row: column spacing
    lps[:3, 1] = col_dir * ps[0]
    lps[:3, 2] = normal * dz
    lps[:3, 3] = positions[0]
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # DICOM is LPS, NIfTI/nibabel RAS
    return volume, affine, (ps[1], ps[0], abs(dz))


def read_dicom_series(
    folder: str | Path, *, max_voxels: int | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Read one DICOM series (a folder of 2D slices) as a volume.

    Slices are ordered along the slice normal by ImagePositionPatient (falling back to
    InstanceNumber). Intensities keep their physical units (rescale slope/intercept
    applied). The affine maps (x, y, z) voxel indices to RAS millimetres, as nibabel's
    do, so the result can be written with :func:`braintumor.data.io.write_nifti`.

    Returns:
        (volume float32 X x Y x Z with X = columns, Y = rows, affine 4x4,
        spacing (column, row, slice) in mm).
    """
    root = Path(folder).expanduser()
    return guarded(root, "series header", lambda: _read_series(root, max_voxels=max_voxels))
