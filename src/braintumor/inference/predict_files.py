"""Predict on files: what ``braintumor predict RUN INPUT...`` does.

Inputs are read by :func:`braintumor.inference.scans.load_input`, the reader every
command shares: 2D images (PNG/JPEG/TIFF/DICOM), NIfTI volumes, DICOM series folders
and BraTS case folders. :class:`~braintumor.inference.predictor.Predictor` scales
each scan to the run's intensity and geometry.

- Classification returns class probabilities (one row per image, or per slice of a
  volume).
- Segmentation of a 2D image writes ``<stem>_mask.png`` (0/255; one
  ``<stem>_mask_<channel>.png`` per channel when there are several) and
  ``<stem>_overlay.png``.
- Segmentation of a volume writes ``<stem>_mask.nii.gz`` with the input's affine (and
  header, for NIfTI inputs): X x Y x Z, or X x Y x Z x K for several channels, uint8
  0/1; and an overlay PNG of the axial slice with the largest predicted area. A run
  trained on C > 1 sequences takes a BraTS case folder, or C NIfTI files per case in
  the training channel order (e.g. flair, t1, t1ce, t2 for BraTS).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from braintumor.data.io import write_nifti
from braintumor.errors import DataError
from braintumor.figures.overlay import save_overlay
from braintumor.inference.predictor import Predictor
from braintumor.inference.scans import ScanInput, load_input, stack_channels, unique_name


def read_inputs(predictor: Predictor, inputs: Sequence[str | Path]) -> list[ScanInput]:
    """Every input read (bad paths fail before any prediction); a run trained on C > 1
    sequences gets consecutive single-sequence NIfTI files grouped C by C into cases."""
    scans = [load_input(p) for p in inputs]
    c = predictor.channels
    singles = [s for s in scans if s.kind == "volume" and s.data.shape[0] == 1]
    if c == 1 or not singles:
        return scans
    if len(singles) % c:
        raise DataError(
            f"this run takes {c} sequences per case; pass {c} NIfTI files per case "
            f"(in the training channel order), got {len(singles)}: "
            + ", ".join(s.path.name for s in singles)
        )
    cases = [stack_channels(singles[i : i + c]) for i in range(0, len(singles), c)]
    grouped = {id(s) for s in singles}
    return [s for s in scans if id(s) not in grouped] + cases


def predict_inputs(
    predictor: Predictor, inputs: Sequence[str | Path], out_dir: str | Path | None
) -> list[dict[str, Any]]:
    """Predict every input; segmentation writes masks and overlays into ``out_dir``.

    Returns:
        One JSON-ready dict per prediction (per image or slice, or per volume case).
    """
    if predictor.is_classification:
        return [
            row for scan in read_inputs(predictor, inputs) for row in _classify(predictor, scan)
        ]
    if out_dir is None:
        raise DataError("segmentation writes mask files: pass --out DIR")
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; choose a folder for the masks and overlays")
    scans = read_inputs(predictor, inputs)
    out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    stems = [unique_name(scan, used) for scan in scans]
    return _segment_all(predictor, scans, out, stems)


def _classify(predictor: Predictor, scan: ScanInput) -> list[dict[str, Any]]:
    probs = np.asarray(predictor.predict_scan(scan))
    rows = []
    for z, row in enumerate(probs):
        rows.append(
            {
                "input": str(scan.path),
                **({"slice": z} if scan.is_volume else {}),
                "prediction": predictor.names[int(np.argmax(row))],
                "probabilities": {n: float(v) for n, v in zip(predictor.names, row, strict=True)},
            }
        )
    return rows


def _write_png_masks(mask: np.ndarray, out_dir: Path, stem: str, names: list[str]) -> list[str]:
    paths = []
    for k, name in enumerate(names):
        suffix = "_mask" if len(names) == 1 else f"_mask_{name}"
        p = out_dir / f"{stem}{suffix}.png"
        Image.fromarray((mask[k] * 255).astype(np.uint8), mode="L").save(p)
        paths.append(str(p))
    return paths


def _pixels(mask: np.ndarray, names: list[str]) -> dict[str, int]:
    return {n: int(mask[k].sum()) for k, n in enumerate(names)}


def segment_scan(predictor: Predictor, scan: ScanInput) -> np.ndarray:
    """Binary masks of every slice of ``scan``: Z x K x H x W uint8 (Z = 1 for an image)."""
    return np.stack([predictor.masks(p) for p in predictor.predict_scan(scan)])


def _segment_all(
    predictor: Predictor,
    scans: list[ScanInput],
    out: Path,
    stems: list[str],
    batch: int = 16,
    chunk_batches: int = 8,
) -> list[dict[str, Any]]:
    """Segment every scan; 2D images go through the network in batches.

    One image at a time wastes most of a CPU's throughput, so the slices of up to
    ``batch`` 2D inputs share a forward pass. Work alternates between two phases per
    chunk of ``chunk_batches`` batches: the forward passes (on every torch thread),
    then the masks and overlays of that chunk, drawn and PNG-encoded by as many writer
    threads (PIL's encoder releases the GIL). Writing *during* the forward passes
    looked cheaper but was not: on 2 cores one writer thread beside torch's 2 threads
    slowed the convolutions ~2.5x (240 slices 3.8 s against 2.6 s for the phases in
    turn). The chunks bound memory on long input lists. Results keep the input order.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    import torch

    flat = [i for i, scan in enumerate(scans) if not scan.is_volume]
    pending: dict[int, Future[dict[str, Any]]] = {}
    step = batch * chunk_batches
    with ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads())) as writers:
        for start in range(0, len(flat), step):
            chunk = flat[start : start + step]
            per_scan = [predictor.scan_slices(scans[i]) for i in chunk]
            probs = predictor.predict_images([s for sl in per_scan for s in sl], batch)
            at, jobs = 0, []
            for i, sl in zip(chunk, per_scan, strict=True):
                masks = np.stack([predictor.masks(p) for p in probs[at : at + len(sl)]])
                at += len(sl)
                pending[i] = writers.submit(_segment, predictor, scans[i], out, stems[i], masks)
                jobs.append(pending[i])
            for job in jobs:  # this chunk written before the next forward passes start
                job.result()
        for i, scan in enumerate(scans):  # volumes: one forward + write each, in turn
            if scan.is_volume:
                pending[i] = writers.submit(_segment, predictor, scan, out, stems[i])
                pending[i].result()
        return [pending[i].result() for i in range(len(scans))]


def _segment(
    predictor: Predictor,
    scan: ScanInput,
    out: Path,
    stem: str,
    masks: np.ndarray | None = None,
) -> dict[str, Any]:
    names = predictor.names
    if masks is None:  # Z x K x H x W
        masks = segment_scan(predictor, scan)
    if not scan.is_volume:
        return {
            "input": str(scan.path),
            "mask": ", ".join(_write_png_masks(masks[0], out, stem, names)),
            "overlay": str(
                save_overlay(
                    scan.display_slices([0])[0],  # H x W: the channel overlays show
                    masks[0],
                    out / f"{stem}_overlay.png",
                    names,
                    title=scan.path.name,
                )
            ),
            "pixels": _pixels(masks[0], names),
        }
    if scan.affine is None:
        raise ValueError(f"{scan.path}: a volume input without an affine")
    vol = scan.mask_volume(list(masks))  # K x X x Y x Z
    data = vol[0] if vol.shape[0] == 1 else np.moveaxis(vol, 0, -1)
    mask_path = write_nifti(out / f"{stem}_mask.nii.gz", data, scan.affine, scan.header)
    per_slice = masks.reshape(masks.shape[0], -1).sum(axis=1)
    z = int(np.argmax(per_slice)) if per_slice.any() else len(masks) // 2
    overlay = save_overlay(
        scan.display_slices([z])[0],
        masks[z],
        out / f"{stem}_overlay.png",
        names,
        title=f"{scan.path.name} (axial slice {z})",
    )
    pixels = _pixels(vol, names)
    ml = scan.voxel_volume_ml
    return {
        "input": ", ".join(str(p) for p in scan.sources or [scan.path]),
        "mask": str(mask_path),
        "overlay": str(overlay),
        "slice": z,
        "pixels": pixels,
        "volume_ml": {n: round(v * ml, 4) for n, v in pixels.items()} if ml else None,
    }
