"""Findings per input: mask files, overlay PNGs and a JSON summary.

For a 2D image: ``<name>_mask.png`` (0/255; one ``<name>_mask_<region>.png`` per
region when there are several), ``<name>_overlay.png`` and ``<name>.json``.
For a volume: ``<name>_mask.nii.gz`` (or one per region) with the input's affine and
header, ``<name>_montage.png`` (the slices with tumor, or evenly spaced slices when
there is none), ``<name>_largest.png`` (the slice with the most tumor) and
``<name>.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from braintumor.data.io import write_nifti
from braintumor.figures.overlay import montage, overlay_rgb, region_color, save_overlay, save_rgb
from braintumor.inference.scans import ScanInput
from braintumor.pipeline.core import SliceResult

MAX_TILES = 16


def bounding_box(region: np.ndarray) -> dict[str, int] | None:
    """Inclusive box of a 2D (H x W) or 3D (Z x H x W) mask; x = column, y = row, z = slice."""
    region = np.asarray(region, dtype=bool)
    axes = range(region.ndim)
    # Per-axis "any" projections: no index arrays of every voxel (a volume has millions).
    spans = [np.flatnonzero(region.any(axis=tuple(a for a in axes if a != k))) for k in axes]
    if spans[0].size == 0:
        return None
    box = {
        "x_min": int(spans[-1][0]),
        "y_min": int(spans[-2][0]),
        "x_max": int(spans[-1][-1]),
        "y_max": int(spans[-2][-1]),
    }
    if region.ndim == 3:
        box.update(z_min=int(spans[0][0]), z_max=int(spans[0][-1]))
    return box


def _class_info(r: SliceResult, classes: Sequence[str]) -> dict[str, Any]:
    best = int(np.argmax(r.probs))
    return {
        "class": classes[best],
        "probabilities": {c: round(float(p), 6) for c, p in zip(classes, r.probs, strict=True)},
        "tumor_probability": round(r.tumor_prob, 6),
        "gate": "kept" if r.kept else "emptied",
    }


def _file_names(stem: Path, regions: Sequence[str], ext: str) -> list[Path]:
    if len(regions) == 1:
        return [stem.with_name(f"{stem.name}_mask{ext}")]
    return [stem.with_name(f"{stem.name}_mask_{r}{ext}") for r in regions]


def _title(scan: ScanInput, info: dict[str, Any], extra: str = "") -> str:
    return f"{scan.name}{extra}: {info['class']} (tumor p={info['tumor_probability']:.2f})"


def write_image_outputs(
    scan: ScanInput, r: SliceResult, classes: Sequence[str], regions: Sequence[str], out: Path
) -> dict[str, Any]:
    """Mask PNG(s), overlay PNG and the summary dict of a 2D input."""

    info = _class_info(r, classes)
    files = []
    for path, m in zip(_file_names(out / scan.name, regions, ".png"), r.mask, strict=True):
        Image.fromarray((m > 0).astype(np.uint8) * 255).save(path)
        files.append(path)
    overlay = save_overlay(
        scan.data,
        r.mask,
        out / f"{scan.name}_overlay.png",
        list(regions),
        _title(scan, info),
        image_channel=scan.display_channel,
    )
    union = r.mask.any(axis=0)
    px = {name: int(m.sum()) for name, m in zip(regions, r.mask, strict=True)}
    px["any"] = int(union.sum())
    area = None
    if scan.spacing is not None:
        area = {k: round(v * scan.spacing[0] * scan.spacing[1], 3) for k, v in px.items()}
    return {
        **info,
        "tumor_area_px": px,
        "tumor_area_mm2": area,
        "pixel_spacing_mm": list(scan.spacing) if scan.spacing else None,
        "bbox": bounding_box(np.asarray(union)),
        "segmenter_pixels_before_gate": int(r.raw_mask.any(axis=0).sum()),
        "files": {"masks": [str(f) for f in files], "overlay": str(overlay)},
    }


def _tile_slices(per_slice_px: np.ndarray) -> list[int]:
    with_tumor = np.flatnonzero(per_slice_px > 0)
    pool = with_tumor if with_tumor.size else np.arange(per_slice_px.size)
    if pool.size <= MAX_TILES:
        return [int(z) for z in pool]
    pick = np.linspace(0, pool.size - 1, MAX_TILES).round().astype(int)
    return [int(pool[i]) for i in pick]


def write_volume_outputs(
    scan: ScanInput,
    results: list[SliceResult],
    classes: Sequence[str],
    regions: Sequence[str],
    out: Path,
) -> dict[str, Any]:
    """Mask NIfTI(s), montage + largest-slice PNGs and the summary dict of a volume."""

    if scan.affine is None:
        raise ValueError(f"{scan.path}: a volume input without an affine")
    masks = np.stack([r.mask for r in results])  # Z x K x H x W
    vol = scan.mask_volume([r.mask for r in results])  # K x X x Y x Z
    files = [
        write_nifti(p, v.astype(np.uint8), scan.affine, scan.header)
        for p, v in zip(_file_names(out / scan.name, regions, ".nii.gz"), vol, strict=True)
    ]
    union = masks.any(axis=1)  # Z x H x W
    per_slice = union.sum(axis=(1, 2))
    legend = [(n, region_color(n, k)) for k, n in enumerate(regions)]
    shown = _tile_slices(per_slice)
    largest = int(np.argmax(per_slice)) if per_slice.any() else None
    # Only the slices drawn are scaled for display (H x W, the channel overlays show).
    drawn = sorted({*shown, *([] if largest is None else [largest])})
    display = dict(zip(drawn, scan.display_slices(drawn), strict=True))
    tiles = [overlay_rgb(display[z], results[z].mask, regions) for z in shown]
    what = "tumor on slices" if per_slice.any() else "no tumor; slices"
    montage_png = save_rgb(
        montage(tiles),
        out / f"{scan.name}_montage.png",
        legend=legend,
        title=f"{scan.name}: {what} {', '.join(map(str, shown))}"[:70],
    )
    top = int(np.argmax([r.tumor_prob for r in results]))
    info = _class_info(results[top], classes)
    largest_png = None
    if largest is not None:
        z = largest
        largest_png = str(
            save_overlay(
                display[z],
                results[z].mask,
                out / f"{scan.name}_largest.png",
                list(regions),
                _title(scan, _class_info(results[z], classes), f" slice {z}"),
            )
        )
    voxels = {name: int(masks[:, k].sum()) for k, name in enumerate(regions)}
    voxels["any"] = int(union.sum())
    ml = scan.voxel_volume_ml
    return {
        "class": info["class"],
        "probabilities": info["probabilities"],
        "tumor_probability": info["tumor_probability"],
        "class_from_slice": top,
        "slices_with_tumor": [int(z) for z in np.flatnonzero(per_slice)],
        "tumor_voxels": voxels,
        "tumor_volume_ml": {k: round(v * ml, 4) for k, v in voxels.items()} if ml else None,
        "voxel_spacing_mm": [*scan.spacing, scan.slice_thickness] if scan.spacing else None,
        "bbox": bounding_box(np.asarray(union)),
        "per_slice": [
            {"slice": z, **_class_info(r, classes), "tumor_px": int(per_slice[z])}
            for z, r in enumerate(results)
        ],
        "files": {
            "masks": [str(f) for f in files],
            "montage": str(montage_png),
            "largest": largest_png,
        },
    }
