"""What a user hands the pipeline: 2D slices, NIfTI volumes, DICOM series, BraTS cases.

Every input becomes a :class:`ScanInput`: a stack of 2D slices (C x H x W each, in
display orientation) plus what is needed to map per-slice masks back into the
input's own geometry (affine and header for volumes) and to measure them (pixel
spacing in mm where the file records it).

Intensities: models expect the scale of the data set they were trained on, so the
scan is kept on its own scale here and scaled per model by :meth:`ScanInput.slices`:
``unit`` ([0, 1]: 8-bit files / 255, float data already on [0, 1] as it is, anything
else by robust percentiles over the whole volume, per channel) or ``zscore`` (zero
mean, unit variance inside the non-zero "brain" voxels of each channel and volume, 0
outside: what the ``brats`` format does).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from braintumor.data.formats.brats import MODALITIES as BRATS_MODALITIES
from braintumor.data.formats.brats import find_case_files
from braintumor.data.intensity import SCALES, robust_scale, scale_scan
from braintumor.data.io import (
    DICOM_EXTENSIONS,
    IMAGE_EXTENSIONS,
    VOLUME_EXTENSIONS,
    image_spacing,
    read_dicom_series,
    read_image,
    read_volume,
)
from braintumor.errors import DataError

__all__ = ["SCALES", "ScanInput", "load_input", "stack_channels", "unique_name"]


@dataclass
class ScanInput:
    """One input scan as a stack of display-oriented 2D slices.

    Attributes:
        path: the file or folder given by the user.
        name: a file-name-safe stem for the outputs.
        kind: ``image``, ``volume`` (NIfTI), ``dicom`` (series folder) or ``brats``.
        data: C x H x W (image) or C x Z x H x W (volume kinds), on the file's own scale.
        spacing: in-plane pixel size (row, column) in mm, or None when unknown.
        slice_thickness: distance between slices in mm (volume kinds), else None.
        affine, header: NIfTI geometry to write masks with (volume kinds).
        channel_names: names of the C image channels.
        display_channel: the channel shown in gray on overlays (FLAIR for BraTS).
    """

    path: Path
    name: str
    kind: str
    data: np.ndarray
    spacing: tuple[float, float] | None = None
    slice_thickness: float | None = None
    affine: np.ndarray | None = None
    header: Any = None
    channel_names: list[str] = field(default_factory=list)
    display_channel: int = 0
    unit_scaled: bool = False  # data already on [0, 1] (read_image's scale)
    sources: list[Path] = field(default_factory=list)  # the files of a stacked case
    _scaled: dict[tuple[int, str], list[np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def is_volume(self) -> bool:
        return self.kind != "image"

    @property
    def n_slices(self) -> int:
        return int(self.data.shape[1]) if self.is_volume else 1

    def slices(self, scale: str = "unit") -> list[np.ndarray]:
        """All slices as float32 C x H x W arrays on ``scale`` (``unit`` or ``zscore``).

        Scaled once per scale and kept: the pipeline's two stages and its overlays ask
        for the same scale of the same volume (views of one array: callers must not write).
        """
        key = (id(self.data), scale)
        if key not in self._scaled:
            vol = self.data if self.is_volume else self.data[:, None]  # C x Z x H x W
            out = scale_scan(vol, scale, self.unit_scaled)
            # One Z x C x H x W copy, then per-slice views (not Z small copies).
            stack = np.ascontiguousarray(out.transpose(1, 0, 2, 3), dtype=np.float32)
            self._scaled = {k: v for k, v in self._scaled.items() if k[0] == id(self.data)}
            self._scaled[key] = list(stack)
        return list(self._scaled[key])

    def display_slices(self, zs: Sequence[int] | None = None) -> list[np.ndarray]:
        """The display channel of slices ``zs`` (default: all), H x W float32 on ``unit``.

        What ``slices("unit")[z][display_channel]`` holds, without scaling the other
        channels (overlays show one; a BraTS case has four) nor the other slices (the
        percentiles still come from the whole volume).
        """
        vol = self.data if self.is_volume else self.data[:, None]  # C x Z x H x W
        ch = min(self.display_channel, vol.shape[0] - 1)
        rows = list(range(vol.shape[1])) if zs is None else [int(z) for z in zs]
        cached = self._scaled.get((id(self.data), "unit"))
        if cached is not None:
            return [cached[z][ch] for z in rows]
        # scale_scan keeps the volume when all of it is already on [0, 1], else scales
        # each channel on its own: the same test, then the one channel.
        unit = self.unit_scaled or (vol.size > 0 and vol.min() >= 0 and vol.max() <= 1)
        if unit:
            return [vol[ch, z].astype(np.float32, copy=False) for z in rows]
        return list(robust_scale(vol[ch], rows=rows))

    def mask_volume(self, masks: list[np.ndarray]) -> np.ndarray:
        """Per-slice K x H x W masks -> K x X x Y x Z in the input's voxel order."""
        stack = np.stack(masks, axis=1)  # K x Z x H x W, slices were vol[:, :, z].T
        return np.ascontiguousarray(stack.transpose(0, 3, 2, 1))

    @property
    def voxel_volume_ml(self) -> float | None:
        """Volume of one voxel in mL (volume kinds with known spacing)."""
        if self.spacing is None or self.slice_thickness is None:
            return None
        return self.spacing[0] * self.spacing[1] * self.slice_thickness / 1000.0


def _stem(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", *VOLUME_EXTENSIONS, *IMAGE_EXTENSIONS, *DICOM_EXTENSIONS):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "input"


def _axial_slices(vol: np.ndarray) -> np.ndarray:
    """X x Y x Z -> Z x H x W with slice z = ``vol[:, :, z].T``: the orientation the
    ``brats`` format trains on (and a DICOM slice's own rows x columns)."""
    return np.ascontiguousarray(vol.transpose(2, 1, 0))


def _nifti_spacing(header: Any) -> tuple[tuple[float, float], float]:
    zx, zy, zz = (float(z) for z in header.get_zooms()[:3])
    return (zy, zx), zz  # display rows run along Y, columns along X


def _load_brats(folder: Path, files: dict[str, Path]) -> ScanInput:
    missing = [m for m in BRATS_MODALITIES if m not in files]
    if missing:
        raise DataError(
            f"{folder}: BraTS case lacks {', '.join(missing)}; it needs *_flair, *_t1, "
            "*_t1ce and *_t2 .nii.gz files"
        )
    vols, ref = [], None
    for m in BRATS_MODALITIES:
        vol, affine, header = read_volume(files[m])
        if ref is None:
            ref = (vol.shape, affine, header)
        elif vol.shape != ref[0]:
            raise DataError(f"{files[m]}: shape {vol.shape} differs from the case's {ref[0]}")
        vols.append(_axial_slices(vol))
    assert ref is not None
    spacing, thick = _nifti_spacing(ref[2])
    return ScanInput(
        folder,
        _stem(folder),
        "brats",
        np.stack(vols),
        spacing,
        thick,
        ref[1],
        ref[2],
        list(BRATS_MODALITIES),
        BRATS_MODALITIES.index("flair"),
    )


def load_input(
    path: str | Path, *, max_pixels: int | None = None, max_voxels: int | None = None
) -> ScanInput:
    """Read one input: an image file, a NIfTI volume, a DICOM series folder or a BraTS case.

    ``max_pixels`` / ``max_voxels`` bound what a header may declare, checked before
    decoding (default: :mod:`braintumor.data.limits`; the service passes its own).

    Raises:
        DataError: for a missing path, an unsupported file or an unrecognised folder.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"{p}: input not found; check the path")
    if p.is_dir():
        files = find_case_files(p)
        if "flair" in files:
            return _load_brats(p, files)
        names = [f.name.lower() for f in p.iterdir()]
        if any(n.endswith(VOLUME_EXTENSIONS) for n in names):
            raise DataError(
                f"{p}: holds NIfTI files but is not a BraTS case (no *_flair.nii.gz); "
                "pass the .nii/.nii.gz files themselves"
            )
        if any(n.endswith(IMAGE_EXTENSIONS) for n in names) and not any(
            n.endswith(DICOM_EXTENSIONS) for n in names
        ):
            raise DataError(
                f"{p}: is a folder of images, not a DICOM series or BraTS case; "
                f"pass the image files in it (e.g. {p}/*.png)"
            )
        vol, affine, spacing = read_dicom_series(
            p, max_voxels=max_voxels
        )  # raises a clear DataError when not DICOM
        return ScanInput(
            p,
            _stem(p),
            "dicom",
            _axial_slices(vol)[None],
            (spacing[1], spacing[0]),
            spacing[2],
            affine,
            None,
            ["dicom"],
        )
    lower = p.name.lower()
    if lower.endswith(VOLUME_EXTENSIONS):
        vol, affine, header = read_volume(p, max_voxels=max_voxels)
        spacing, thick = _nifti_spacing(header)
        return ScanInput(
            p,
            _stem(p),
            "volume",
            _axial_slices(vol)[None],
            spacing,
            thick,
            affine,
            header,
            ["volume"],
        )
    if lower.endswith(IMAGE_EXTENSIONS + DICOM_EXTENSIONS):
        image = read_image(p, max_pixels=max_pixels)
        sp = image_spacing(p)
        return ScanInput(
            p,
            _stem(p),
            "image",
            image,
            (sp[0], sp[1]) if sp else None,
            channel_names=["image"] * image.shape[0],
            unit_scaled=True,
        )
    raise DataError(
        f"{p}: unsupported input; give PNG/JPEG/TIFF/DICOM images, .nii/.nii.gz volumes, "
        "a DICOM series folder or a BraTS case folder"
    )


def stack_channels(scans: list[ScanInput]) -> ScanInput:
    """C single-sequence volumes of one case (NIfTI files, in the training channel order)
    as one C-channel scan; geometry from the first.

    Raises:
        DataError: the volumes differ in shape, or one is not a volume.
    """
    first = scans[0]
    for s in scans:
        if s.kind != "volume":
            raise DataError(f"{s.path}: the sequences of one case must be NIfTI volumes")
        if s.data.shape[1:] != first.data.shape[1:]:
            raise DataError(
                f"{s.path}: the sequences of one case differ in shape "
                f"({s.data.shape[1:]} vs {first.data.shape[1:]} in {first.path})"
            )
    return ScanInput(
        first.path,
        first.name,
        "volume",
        np.concatenate([s.data for s in scans]),
        first.spacing,
        first.slice_thickness,
        first.affine,
        first.header,
        [s.name for s in scans],
        sources=[s.path for s in scans],
    )


def unique_name(scan: ScanInput, used: set[str]) -> str:
    """``scan.name``, or ``<name>_2``, ``_3``... when another input already took it
    (two ``scan.png`` in different folders). Adds the name to ``used``."""
    name, i = scan.name, 1
    while name in used:
        i += 1
        name = f"{scan.name}_{i}"
    used.add(name)
    return name
