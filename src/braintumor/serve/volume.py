"""Volumes through the service: a NIfTI file or a zipped DICOM series in, every slice out.

The upload is read by the scan reader every command shares
(:func:`braintumor.inference.scans.load_input`), scaled to the run's intensity and
segmented slice by slice, as ``braintumor predict`` does. The answer carries, per
axial slice, the scan as a gray PNG and the mask as a transparent RGBA PNG (each
region in its colour), so the page can scroll through the slices and lay the mask
over the scan at any opacity; and the tumour volume in mL from the voxel spacing.
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from braintumor.data.io import VOLUME_EXTENSIONS
from braintumor.errors import BrainTumorError, DataError
from braintumor.figures.overlay import mask_rgba, region_color
from braintumor.inference.scans import ScanInput, load_input
from braintumor.serve.results import png_base64

VOLUME_UPLOADS = (*VOLUME_EXTENSIONS, ".zip")
# A zipped series is unpacked before reading; these bound what a small upload may
# unpack to (a "zip bomb" declares or streams far more than it holds).
MAX_ZIP_MEMBERS = 4096
MAX_UNZIPPED_BYTES = 1 << 30


def is_volume_upload(filename: str) -> bool:
    """True for a NIfTI volume (``.nii``, ``.nii.gz``) or a zip (a DICOM series)."""
    return filename.lower().endswith(VOLUME_UPLOADS)


def unzip_series(path: Path, dest: Path, filename: str) -> Path:
    """Unpack the files of a zipped DICOM series flat into ``dest`` (folders dropped,
    so no member can write outside it); returns ``dest``."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise DataError(f"{filename}: not a valid zip file; zip the DICOM series folder") from None
    with archive:
        members = [
            m
            for m in archive.infolist()
            if not m.is_dir() and not Path(m.filename).name.startswith((".", "__MACOSX"))
        ]
        if len(members) > MAX_ZIP_MEMBERS:
            raise DataError(
                f"{filename}: {len(members)} files; a series has at most {MAX_ZIP_MEMBERS} slices"
            )
        if sum(m.file_size for m in members) > MAX_UNZIPPED_BYTES:
            raise DataError(f"{filename}: unpacks to more than {MAX_UNZIPPED_BYTES >> 20} MB")
        dest.mkdir(parents=True, exist_ok=True)
        written = 0
        for i, m in enumerate(members):
            target = dest / f"{i:05d}_{Path(m.filename).name}"
            with archive.open(m) as src, target.open("wb") as out:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > MAX_UNZIPPED_BYTES:  # a member that lied about its size
                        raise DataError(
                            f"{filename}: unpacks to more than {MAX_UNZIPPED_BYTES >> 20} MB"
                        )
                    out.write(chunk)
    return dest


def read_volume_upload(path: Path, filename: str, *, max_voxels: int | None = None) -> ScanInput:
    """The uploaded NIfTI file or zipped DICOM series as a scan (files next to ``path``)."""
    if filename.lower().endswith(".zip"):
        folder = unzip_series(path, path.parent / "series", filename)
        try:
            return load_input(folder, max_voxels=max_voxels)
        except BrainTumorError as exc:  # name the user's zip, not our unpacked copy
            raise DataError(str(exc).replace(str(folder), filename)) from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return load_input(path, max_voxels=max_voxels)


def volume_result(
    scan: ScanInput, masks: np.ndarray, mask_channels: Sequence[str], threshold: float
) -> dict[str, Any]:
    """What the page needs to show a segmented volume.

    Args:
        scan: the volume as read.
        masks: Z x K x H x W binary masks, one per slice of ``scan``.
        mask_channels: names of the K channels.
        threshold: the probability threshold the masks were cut at.
    """
    names = list(mask_channels)
    display = scan.slices("unit")  # one scale for the whole volume: slices compare
    union = masks.any(axis=1)  # Z x H x W
    voxels = {n: int(masks[:, k].sum()) for k, n in enumerate(names)}
    voxels["any"] = int(union.sum())
    ml = scan.voxel_volume_ml
    per_slice = union.reshape(union.shape[0], -1).sum(axis=1)
    channel = scan.display_channel
    return {
        "kind": "volume",
        "n_slices": int(masks.shape[0]),
        "image_size": list(masks.shape[-2:]),
        "threshold": float(threshold),
        "spacing_mm": [*scan.spacing, scan.slice_thickness] if scan.spacing else None,
        "tumor_voxels": voxels,
        "tumor_volume_ml": {k: round(v * ml, 4) for k, v in voxels.items()} if ml else None,
        "colors": {
            n: "#{:02x}{:02x}{:02x}".format(*region_color(n, k)) for k, n in enumerate(names)
        },
        "largest_slice": int(np.argmax(per_slice)) if per_slice.any() else len(masks) // 2,
        "slices": [
            {
                "image_png": png_base64((display[z][channel] * 255).round().astype(np.uint8)),
                "mask_png": png_base64(mask_rgba(masks[z], names)),
                "tumor_px": int(per_slice[z]),
            }
            for z in range(masks.shape[0])
        ],
    }


def predict_volume_upload(
    predict: Callable[[list[np.ndarray]], Any],
    intensity: str,
    threshold: float,
    mask_channels: Sequence[str],
    scan: ScanInput,
) -> dict[str, Any]:
    """Segment every slice of ``scan`` on the run's ``intensity`` scale."""
    probs = predict(scan.slices(intensity))
    masks = np.stack([(np.asarray(p) > threshold).astype(np.uint8) for p in probs])
    return volume_result(scan, masks, mask_channels, threshold)
