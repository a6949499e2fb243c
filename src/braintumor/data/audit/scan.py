"""Read one record for the audit: file hash, size, mode, tumor flag, thumbnail.

Exact content: SHA-1 of the file bytes for one-file samples; for slices of a
volume, SHA-1 of the decoded slice array. Blank slices (one constant value, e.g.
the empty top and bottom of a BraTS volume) are flagged so that the duplicate
counts can leave them out, where they would otherwise dominate.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from braintumor.data.audit.quirks import slice_traits
from braintumor.data.base import DatasetFormat, Record
from braintumor.data.io import read_mask
from braintumor.data.limits import check_pixels

THUMB = 64  # side of the uint8 thumbnail kept per sample (4 KiB)


@dataclass
class ScanItem:
    """What the scan keeps of one record (no pixels except a tiny thumbnail)."""

    key: str
    split: str
    digest: str | None = None
    hw: tuple[int, int] | None = None
    mode: str | None = None
    tumor: bool | None = None
    thumb: np.ndarray | None = None
    blank: bool = False
    decoded: bool = False  # digest of the decoded array, not of the file bytes
    error: str | None = None
    same_channels: bool | None = None  # every channel the same image (see quirks.py)
    level: float | None = None  # 99th percentile of the FLAIR brain pixels


def _thumb(img: Image.Image) -> np.ndarray:
    if img.format == "JPEG":
        img.draft("L", (THUMB, THUMB))  # decode at 1/2..1/8 scale: much faster
    return np.asarray(img.convert("L").resize((THUMB, THUMB), Image.Resampling.BILINEAR))


def _thumb_array(image: np.ndarray) -> np.ndarray:
    plane = image.mean(axis=0) if image.ndim == 3 else image
    lo, hi = float(plane.min()), float(plane.max())
    scaled = (plane - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(plane)
    return _thumb(Image.fromarray(scaled.astype(np.uint8)))


def file_type(path: str) -> str:
    """The file type shown in the summary: ``.png``, ``.nii.gz``, ``(folder)``, ..."""
    suffixes = Path(path).suffixes
    kept = suffixes[-2:] if suffixes[-1:] == [".gz"] else suffixes[-1:]
    return "".join(kept).lower() or ("(folder)" if Path(path).is_dir() else "(none)")


def _open_quietly(data: bytes) -> Image.Image:
    # Pillow warns about large images; check_pixels gives the one clear answer instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data))


def scan_record(
    fmt: DatasetFormat, rec: Record, split: str, decode: bool, near: bool, tumor: list[bool]
) -> ScanItem:
    """Hash and measure one record; ``decode`` = hash the decoded array (volume slices).

    ``tumor[label]`` says whether a class means tumor (used when there are no masks).
    """
    it = ScanItem(key=rec.key, split=split)
    sample = None
    if not decode:
        data = Path(rec.path).read_bytes()
        it.digest = hashlib.sha1(data).hexdigest()
        try:
            with _open_quietly(data) as img:
                if isinstance(img, ImageFile.StubImageFile):  # Pillow "knows" HDF5 but
                    raise UnidentifiedImageError(rec.path)  # cannot read it
                # The thumbnail decodes the image: refuse a bomb from its header first.
                check_pixels(Path(rec.path), (img.height, img.width))
                it.hw, it.mode = (img.height, img.width), img.mode
                if img.mode == "RGB":  # 8-bit multi-channel slices (LGG): on [0, 1]
                    rgb = np.moveaxis(np.asarray(img), -1, 0) / 255.0
                    if rgb.max() > 0:  # an all-black slice says nothing about the scan
                        it.same_channels, it.level = slice_traits(rgb, fmt.flair_channel)
                if near:
                    it.thumb = _thumb(img)
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
            it.hw = it.mode = None
            # Not a 2D image file (h5, dicom, ...), or one over Pillow's own limit: the
            # format's reader decodes it, or refuses it with a clear error.
            sample = fmt.load(rec)
    else:
        sample = fmt.load(rec)
        image = sample["image"]
        it.digest = hashlib.sha1(repr(image.shape).encode() + image.tobytes()).hexdigest()
        it.decoded = True
    if sample is not None:
        image = sample["image"]
        it.hw = it.hw or (int(image.shape[-2]), int(image.shape[-1]))
        it.blank = bool(image.min() == image.max())  # e.g. the empty ends of a volume
        if image.ndim == 3 and not it.blank:
            it.same_channels, it.level = slice_traits(image, fmt.flair_channel)
        if near and it.thumb is None:
            it.thumb = _thumb_array(image)
    if fmt.mask_channels:
        if sample is None and rec.mask_path:
            it.tumor = bool(read_mask(rec.mask_path).any())  # size-checked before decoding
        else:
            mask = (sample if sample is not None else fmt.load(rec))["mask"]
            it.tumor = bool(mask is not None and mask.any())
    elif 0 <= rec.label < len(tumor):
        it.tumor = tumor[rec.label]
    return it
