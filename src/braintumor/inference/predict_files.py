"""Predict on files: what ``braintumor predict RUN INPUT...`` does.

- 2D images (PNG/JPEG/TIFF/DICOM, read by :func:`braintumor.data.io.read_image`):
  classification returns class probabilities; segmentation writes
  ``<stem>_mask.png`` (0/255; one ``<stem>_mask_<channel>.png`` per channel when
  there are several) and ``<stem>_overlay.png``.
- NIfTI volumes (segmentation only): ``<stem>_mask.nii.gz`` with the input's affine
  and header (X x Y x Z, or X x Y x Z x K for several channels, uint8 0/1) and an
  overlay PNG of the axial slice with the largest predicted area. A run trained on
  C > 1 sequences takes C NIfTI files as the channels of one case, in the training
  channel order (e.g. flair, t1, t1ce, t2 for BraTS).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from braintumor.data.intensity import robust_scale, zscore_brain
from braintumor.errors import DataError
from braintumor.inference.predictor import Predictor


def _stem(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return path.stem


def _is_volume(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def normalize_volume(predictor: Predictor, volume: np.ndarray) -> np.ndarray:
    """Put a raw NIfTI volume on the intensity scale the run was trained on."""
    from braintumor.inference.runs import card_intensity

    if card_intensity(predictor.card) == "zscore":
        return zscore_brain(volume)
    return robust_scale(volume)


def _unique(out_dir: Path, stem: str, used: set[str]) -> str:
    base, i = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) or "input", 1
    name = base
    while name in used:
        i += 1
        name = f"{base}_{i}"
    used.add(name)
    return name


def _write_png_masks(mask: np.ndarray, out_dir: Path, stem: str, names: list[str]) -> list[str]:
    from PIL import Image

    paths = []
    for k, name in enumerate(names):
        suffix = "_mask" if len(names) == 1 else f"_mask_{name}"
        p = out_dir / f"{stem}{suffix}.png"
        Image.fromarray((mask[k] * 255).astype(np.uint8), mode="L").save(p)
        paths.append(str(p))
    return paths


def _pixels(mask: np.ndarray, names: list[str]) -> dict[str, int]:
    return {n: int(mask[k].sum()) for k, n in enumerate(names)}


def read_input_image(predictor: Predictor, path: Path) -> np.ndarray:
    """A 2D input read as the run expects it, or one line naming the file and the fix."""
    from braintumor.data.io import read_image

    image = read_image(path)
    have, want = image.shape[0], predictor.channels
    if have != want and {have, want} != {1, 3}:  # gray <-> RGB is converted
        if not predictor.is_classification:
            fix = f"pass the {want} sequences of a case as {want} NIfTI files"
        else:
            fix = "image files give 1 or 3 channels, so use a run trained on 1 or 3 channels"
        raise DataError(
            f"{path} has {have} channel(s) but this run was trained on {want}-channel images; {fix}"
        )
    return image


def predict_inputs(
    predictor: Predictor, inputs: Sequence[str | Path], out_dir: str | Path | None
) -> list[dict[str, Any]]:
    """Predict every input; segmentation writes masks and overlays into ``out_dir``.

    Returns:
        One JSON-ready dict per prediction (per image, or per volume case).
    """
    paths = [Path(p).expanduser() for p in inputs]
    for p in paths:
        if p.is_dir():
            raise DataError(f"{p}: is a folder; pass the image files in it (e.g. {p}/*.png)")
        if not p.is_file():
            raise DataError(f"{p}: input file not found; check the path")
    volumes = [p for p in paths if _is_volume(p)]
    images = [p for p in paths if not _is_volume(p)]
    results: list[dict[str, Any]] = []
    if predictor.is_classification:
        if volumes:
            raise DataError(f"{volumes[0]}: classification runs predict 2D images, not volumes")
        probs = predictor.predict_images([read_input_image(predictor, p) for p in images])
        for p, row in zip(images, probs, strict=True):
            k = int(np.argmax(row))
            results.append(
                {
                    "input": str(p),
                    "prediction": predictor.names[k],
                    "probabilities": {
                        n: float(v) for n, v in zip(predictor.names, row, strict=True)
                    },
                }
            )
        return results
    if out_dir is None:
        raise DataError("segmentation writes mask files: pass --out DIR")
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; choose a folder for the masks and overlays")
    out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for p in images:
        results.append(_segment_image(predictor, p, out, used))
    results += _segment_volumes(predictor, volumes, out, used)
    return results


def _segment_image(predictor: Predictor, path: Path, out: Path, used: set[str]) -> dict[str, Any]:
    from braintumor.reports.overlay import save_overlay

    image = read_input_image(predictor, path)
    probs = predictor.predict_images([image])[0]
    mask = predictor.masks(probs)
    stem = _unique(out, path.stem, used)
    masks = _write_png_masks(mask, out, stem, predictor.names)
    overlay = save_overlay(
        image, mask, out / f"{stem}_overlay.png", predictor.names, title=path.name
    )
    return {
        "input": str(path),
        "mask": ", ".join(masks),
        "overlay": str(overlay),
        "pixels": _pixels(mask, predictor.names),
    }


def _segment_volumes(
    predictor: Predictor, paths: list[Path], out: Path, used: set[str]
) -> list[dict[str, Any]]:
    from braintumor.data.io import read_volume, write_nifti
    from braintumor.reports.overlay import save_overlay

    if not paths:
        return []
    c = predictor.channels
    if c > 1 and len(paths) != c:
        raise DataError(
            f"this run takes {c} sequences per case; pass exactly {c} NIfTI files "
            f"(in the training channel order), got {len(paths)}: "
            + ", ".join(p.name for p in paths)
        )
    cases = [paths] if c > 1 else [[p] for p in paths]
    results = []
    for case in cases:
        loaded = [read_volume(p) for p in case]
        shapes = {v.shape for v, _, _ in loaded}
        if len(shapes) > 1:
            raise DataError(
                f"{case[0]}: the sequences of one case differ in shape {sorted(shapes)}"
            )
        volume = np.stack([normalize_volume(predictor, v) for v, _, _ in loaded])
        probs = predictor.predict_volume(volume)  # K x X x Y x Z
        mask = predictor.masks(probs)
        _, affine, header = loaded[0]
        stem = _unique(out, _stem(case[0]), used)
        data = mask[0] if mask.shape[0] == 1 else np.moveaxis(mask, 0, -1)
        mask_path = write_nifti(out / f"{stem}_mask.nii.gz", data, affine, header)
        z = (
            int(np.argmax(mask.reshape(-1, mask.shape[-1]).sum(axis=0)))
            if mask.any()
            else mask.shape[-1] // 2
        )
        overlay = save_overlay(
            volume[..., z].transpose(0, 2, 1),
            mask[..., z].transpose(0, 2, 1),
            out / f"{stem}_overlay.png",
            predictor.names,
            title=f"{case[0].name} (axial slice {z})",
        )
        results.append(
            {
                "input": ", ".join(str(p) for p in case),
                "mask": str(mask_path),
                "overlay": str(overlay),
                "slice": z,
                "pixels": _pixels(mask, predictor.names),
            }
        )
    return results
