"""Helpers that write tiny files in real on-disk formats for the data tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def save_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)
    return path


def head_image(h: int = 64, w: int = 80, value: float = 200, dtype: type = np.uint8) -> np.ndarray:
    """A bright ellipse (the "head") on a dark background, centred at 60% of the width."""
    yy, xx = np.mgrid[:h, :w]
    inside = ((yy - h / 2) / (h * 0.3)) ** 2 + ((xx - w * 0.6) / (w * 0.2)) ** 2 <= 1
    out = np.full((h, w), 10, dtype=dtype)
    out[inside] = value
    return out


def save_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    position: tuple[float, float, float] = (0.0, 0.0, 0.0),
    instance: int = 1,
    spacing: tuple[float, float] = (0.5, 0.7),
    slope: float = 1.0,
    intercept: float = 0.0,
    photometric: str = "MONOCHROME2",
    series_uid: str = "1.2.3.4",
) -> Path:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = series_uid
    ds.InstanceNumber = instance
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.PixelSpacing = list(spacing)
    ds.ImagePositionPatient = list(position)
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceThickness = 3.0
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
