"""Read images, masks and volumes with one clear error per problem.

Every reader returns plain numpy arrays and raises :class:`~braintumor.errors.DataError`
(one line: the file, what is wrong, what to do) for a missing, truncated, corrupt or
unsupported file. Nothing here ever unpickles: PIL, tifffile, pydicom and nibabel
only parse their own formats.

Intensity conventions of :func:`read_image`: 8-bit files are divided by 255 (the
file's own scale, so the same pixel value always means the same thing); 16-bit,
float and DICOM images have no fixed range (12-bit data in 16-bit containers,
scanner units), so they are scaled by a robust min/max (0.5th/99.5th percentile)
to [0, 1].

The PIL and TIFF decoders (header checks before decoding, pixels as stored) are in
:mod:`braintumor.data.decoders`; DICOM in :mod:`braintumor.data.dicom`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from braintumor.data.decoders import _channels_first, _decode_pil, _decode_tiff
from braintumor.data.dicom import decode_dicom, dicom_to_float, guarded, read_dicom_series
from braintumor.data.intensity import robust_scale, to_unit
from braintumor.data.limits import (
    check_affine,
    check_dtype,
    check_finite,
    check_voxels,
)
from braintumor.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DICOM_EXTENSIONS = (".dcm", ".dicom")
VOLUME_EXTENSIONS = (".nii", ".nii.gz")

__all__ = [
    "DICOM_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "VOLUME_EXTENSIONS",
    "image_spacing",
    "is_image_file",
    "list_images",
    "read_dicom_series",
    "read_image",
    "read_mask",
    "read_volume",
    "write_nifti",
]


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _existing(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: file not found; check the path")
    if p.is_dir():
        raise DataError(f"{p}: is a folder, expected a file")
    if not p.is_file():  # a FIFO or a device: reading it could block or never end
        raise DataError(f"{p}: is not a regular file (a pipe or device?); pass an image file")
    return p


def is_image_file(path: str | Path) -> bool:
    """True for a 2D image file :func:`read_image` understands (by extension)."""
    p = Path(path)
    return not p.name.startswith(".") and _suffix(p) in IMAGE_EXTENSIONS + DICOM_EXTENSIONS


def list_images(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (sorted; hidden files and other extensions skipped)."""
    root = Path(folder)
    it = root.rglob("*") if recursive else root.iterdir()
    return sorted(p for p in it if p.is_file() and is_image_file(p))


def _read_raw(path: str | Path, limit: int | None) -> tuple[np.ndarray, Path]:
    """Decoded pixels as stored (no scaling) and the checked path."""
    p = _existing(path)
    ext = _suffix(p)
    if ext in (".tif", ".tiff"):
        return _decode_tiff(p, limit), p
    if ext in IMAGE_EXTENSIONS:
        return _decode_pil(p, limit), p
    if ext in DICOM_EXTENSIONS:
        pixels, ds = decode_dicom(p, limit)
        if guarded(p, "header", lambda: int(getattr(ds, "NumberOfFrames", 1) or 1)) > 1:
            raise DataError(f"{p}: multi-frame DICOM; read it with read_dicom_series/a volume")
        return guarded(p, "header", lambda: dicom_to_float(pixels, ds)), p
    if ext in VOLUME_EXTENSIONS:
        raise DataError(f"{p}: is a NIfTI volume, not a 2D image; use a volume format (brats)")
    raise DataError(
        f"{p}: unknown image type {ext or '(no extension)'!r}; supported: "
        + ", ".join(IMAGE_EXTENSIONS + DICOM_EXTENSIONS)
    )


def read_image(path: str | Path, *, max_pixels: int | None = None) -> np.ndarray:
    """Read a 2D image as float32 C x H x W in [0, 1] (C = 1 or 3; alpha dropped).

    ``max_pixels`` bounds the size declared in the header, checked before decoding
    (default: :func:`braintumor.data.limits.max_pixels`).
    """
    raw, p = _read_raw(path, max_pixels)
    check_finite(p, raw)
    a = _channels_first(raw, p)
    if _suffix(p) in DICOM_EXTENSIONS:
        return robust_scale(a)
    return np.ascontiguousarray(to_unit(a))


def read_mask(path: str | Path, *, max_pixels: int | None = None) -> np.ndarray:
    """Read a binary mask as uint8 H x W with values 0/1.

    Colour masks count a pixel as foreground in any channel. Masks with values up to 1
    (or small label values) use ``> 0``; 0/255-style masks use half their maximum,
    which ignores JPEG ringing around the edges.
    """
    raw, p = _read_raw(path, max_pixels)
    a = _channels_first(raw, p).max(axis=0)
    top = float(a.max()) if a.size else 0.0
    threshold = top / 2 if top >= 128 else 0
    return (a > threshold).astype(np.uint8)


def read_volume(
    path: str | Path, *, max_voxels: int | None = None
) -> tuple[np.ndarray, np.ndarray, Any]:
    """Read a NIfTI volume: (float32 X x Y x Z array, 4x4 affine, nibabel header).

    The header is checked before the voxels are read: size (``max_voxels``, default
    :func:`braintumor.data.limits.max_voxels`), a real-valued type and a finite,
    invertible affine. A volume without one finite value is refused.
    """
    import nibabel as nib

    p = _existing(path)
    if _suffix(p) not in VOLUME_EXTENSIONS:
        raise DataError(f"{p}: not a NIfTI file; expected .nii or .nii.gz")
    try:
        img = nib.load(p)
        check_voxels(p, img.shape, max_voxels)
        check_dtype(p, img.get_data_dtype())
        check_affine(p, img.affine)
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except DataError:
        raise
    except Exception as exc:  # ImageFileError, EOFError (truncated gzip), zlib.error, ...
        raise DataError(
            f"{p}: cannot read NIfTI ({type(exc).__name__}: {exc}); the file is corrupt "
            "or truncated, re-download it"
        ) from None
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f"{p}: volume has shape {data.shape}; expected 3D (X x Y x Z)")
    check_finite(p, data)
    return data, np.asarray(img.affine, dtype=np.float64), img.header


def write_nifti(
    path: str | Path, array: np.ndarray, affine: np.ndarray, header: Any = None
) -> Path:
    """Write ``array`` as NIfTI, keeping ``affine`` and the fields of ``header``.

    The data type stored is the array's own (booleans as uint8), so writing a float
    probability map with a label-map header does not silently round it.
    """
    import nibabel as nib

    p = Path(path)
    if _suffix(p) not in VOLUME_EXTENSIONS:
        raise DataError(f"{p}: NIfTI output must end in .nii or .nii.gz")
    a = np.asarray(array)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    hdr = header.copy() if header is not None else None
    img = nib.Nifti1Image(a, np.asarray(affine, dtype=np.float64), header=hdr)
    img.set_data_dtype(a.dtype)
    if hdr is not None:  # keep the source's coordinate codes, not nibabel's defaults
        img.set_sform(affine, code=int(hdr["sform_code"]) or 1)
        img.set_qform(affine, code=int(hdr["qform_code"]) or 1)
    p.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, p)
    return p


def _dicom_spacing(ds: Any) -> tuple[float, ...] | None:
    ps = getattr(ds, "PixelSpacing", None) or getattr(ds, "ImagerPixelSpacing", None)
    return (float(ps[0]), float(ps[1])) if ps else None


def image_spacing(path: str | Path) -> tuple[float, ...] | None:
    """Physical pixel/voxel spacing in mm where the file records it, else ``None``.

    DICOM: (row spacing, column spacing), i.e. along H then W. NIfTI: the voxel sizes
    along X, Y, Z. PNG/JPEG/TIFF store only a print resolution (dpi), which says
    nothing about the anatomy, so they return ``None``.
    """
    p = _existing(path)
    ext = _suffix(p)
    if ext in VOLUME_EXTENSIONS:
        import nibabel as nib

        try:
            return tuple(float(z) for z in nib.load(p).header.get_zooms()[:3])
        except Exception as exc:
            raise DataError(f"{p}: cannot read NIfTI header ({exc}); re-download it") from None
    if ext in DICOM_EXTENSIONS:
        import pydicom

        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except Exception as exc:
            raise DataError(f"{p}: cannot read DICOM header ({exc}); is it DICOM?") from None
        return guarded(p, "pixel spacing", lambda: _dicom_spacing(ds))
    return None
