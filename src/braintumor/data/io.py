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
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from braintumor.data.intensity import robust_scale, to_unit
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
    if not p.is_file():
        raise DataError(f"{p}: is a folder, expected a file")
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


def _channels_first(a: np.ndarray, path: Path) -> np.ndarray:
    """HxW / HxWxC / CxHxW -> CxHxW with 1 or 3 channels (alpha dropped)."""
    if a.ndim == 2:
        return a[None]
    if a.ndim == 3:
        if a.shape[-1] <= 4:
            a = np.moveaxis(a, -1, 0)  # channels-last: what PIL and most TIFFs give
        elif a.shape[0] > 4:
            raise DataError(
                f"{path}: image has shape {a.shape}, not HxW or HxWxC with at most 4 "
                "channels (a multi-page stack?); save one 2D image per file"
            )
        c = a.shape[0]
        if c == 2:  # gray + alpha
            return a[:1]
        return a[:3] if c == 4 else a  # RGBA -> RGB
    raise DataError(f"{path}: image has {a.ndim} dimensions {a.shape}; expected a 2D image")


def _decode_pil(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()  # decode fully now: a truncated file fails here, not later
            mode = im.mode
            if mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB")
            elif mode == "1":
                im = im.convert("L")
            elif mode == "LA":
                im = im.convert("L")
            return np.asarray(im).copy()
    except DataError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, ...
        raise DataError(
            f"{path}: cannot decode image ({type(exc).__name__}: {exc}); the file is "
            "corrupt or truncated, re-download or remove it"
        ) from None


def _decode_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        return np.asarray(tifffile.imread(path))
    except Exception as exc:  # tifffile raises TiffFileError, ValueError, ...
        raise DataError(
            f"{path}: cannot decode TIFF ({type(exc).__name__}: {exc}); the file is "
            "corrupt or truncated, re-download or remove it"
        ) from None


def _decode_dicom(path: Path) -> tuple[np.ndarray, Any]:
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except Exception as exc:
        raise DataError(
            f"{path}: cannot read DICOM pixels ({type(exc).__name__}: {exc}); the file is "
            "corrupt, not DICOM, or compressed (install pylibjpeg or gdcm)"
        ) from None
    return pixels, ds


def _dicom_to_float(pixels: np.ndarray, ds: Any) -> np.ndarray:
    """Apply the modality rescale (slope/intercept) and undo MONOCHROME1 inversion."""
    a = pixels.astype(np.float32)
    if str(getattr(ds, "PhotometricInterpretation", "")).startswith("MONOCHROME"):
        a = a * float(getattr(ds, "RescaleSlope", 1) or 1) + float(
            getattr(ds, "RescaleIntercept", 0) or 0
        )
        if ds.PhotometricInterpretation == "MONOCHROME1":  # high value = dark
            a = a.max() - a
    return a


def _read_raw(path: str | Path) -> tuple[np.ndarray, Path]:
    """Decoded pixels as stored (no scaling) and the checked path."""
    p = _existing(path)
    ext = _suffix(p)
    if ext in (".tif", ".tiff"):
        return _decode_tiff(p), p
    if ext in IMAGE_EXTENSIONS:
        return _decode_pil(p), p
    if ext in DICOM_EXTENSIONS:
        pixels, ds = _decode_dicom(p)
        if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
            raise DataError(f"{p}: multi-frame DICOM; read it with read_dicom_series/a volume")
        return _dicom_to_float(pixels, ds), p
    if ext in VOLUME_EXTENSIONS:
        raise DataError(f"{p}: is a NIfTI volume, not a 2D image; use a volume format (brats)")
    raise DataError(
        f"{p}: unknown image type {ext or '(no extension)'!r}; supported: "
        + ", ".join(IMAGE_EXTENSIONS + DICOM_EXTENSIONS)
    )


def read_image(path: str | Path) -> np.ndarray:
    """Read a 2D image as float32 C x H x W in [0, 1] (C = 1 or 3; alpha dropped)."""
    raw, p = _read_raw(path)
    a = _channels_first(raw, p)
    if _suffix(p) in DICOM_EXTENSIONS:
        return robust_scale(a)
    return np.ascontiguousarray(to_unit(a))


def read_mask(path: str | Path) -> np.ndarray:
    """Read a binary mask as uint8 H x W with values 0/1.

    Colour masks count a pixel as foreground in any channel. Masks with values up to 1
    (or small label values) use ``> 0``; 0/255-style masks use half their maximum,
    which ignores JPEG ringing around the edges.
    """
    raw, p = _read_raw(path)
    a = _channels_first(raw, p).max(axis=0)
    top = float(a.max()) if a.size else 0.0
    threshold = top / 2 if top >= 128 else 0
    return (a > threshold).astype(np.uint8)


def read_volume(path: str | Path) -> tuple[np.ndarray, np.ndarray, Any]:
    """Read a NIfTI volume: (float32 X x Y x Z array, 4x4 affine, nibabel header)."""
    import nibabel as nib

    p = _existing(path)
    if _suffix(p) not in VOLUME_EXTENSIONS:
        raise DataError(f"{p}: not a NIfTI file; expected .nii or .nii.gz")
    try:
        img = nib.load(p)
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as exc:  # ImageFileError, EOFError (truncated gzip), zlib.error, ...
        raise DataError(
            f"{p}: cannot read NIfTI ({type(exc).__name__}: {exc}); the file is corrupt "
            "or truncated, re-download it"
        ) from None
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f"{p}: volume has shape {data.shape}; expected 3D (X x Y x Z)")
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
        ps = getattr(ds, "PixelSpacing", None) or getattr(ds, "ImagerPixelSpacing", None)
        return (float(ps[0]), float(ps[1])) if ps else None
    return None


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


def read_dicom_series(folder: str | Path) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Read one DICOM series (a folder of 2D slices) as a volume.

    Slices are ordered along the slice normal by ImagePositionPatient (falling back to
    InstanceNumber). Intensities keep their physical units (rescale slope/intercept
    applied). The affine maps (x, y, z) voxel indices to RAS millimetres, as nibabel's
    do, so the result can be written with :func:`write_nifti`.

    Returns:
        (volume float32 X x Y x Z with X = columns, Y = rows, affine 4x4,
        spacing (column, row, slice) in mm).
    """
    root = Path(folder).expanduser()
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
        planes.append(_dicom_to_float(pixels, d).T)  # rows x cols -> x (cols) x y (rows)
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
