"""The hostile workspace of ``robustness.py``: tiny runs, broken runs and bad files.

Everything is written into one temporary folder; nothing here trains (runs are an
untrained tiny model written with the run API, as ``train`` writes them).
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import tifffile
from PIL import Image

from braintumor.config import Config, save_config
from braintumor.inference import runs
from braintumor.models import create_model

SEG = "segmentation"
TINY = {
    "classification": ("simple_cnn", {"widths": [4, 8, 8], "hidden": 8}),
    "segmentation": ("unet", {"n_filters": 4, "depth": 2}),
}


def tiny_run(task: str, out: Path, image_size: int = 32, name: str | None = None) -> Path:
    """An untrained run folder (``name``/kwargs default to a tiny model of ``task``)."""
    model_name, kwargs = TINY[task]
    if name is not None:
        model_name, kwargs = name, {}
    cfg = Config(task=task)
    cfg.data.image_size = image_size
    cfg.model.name, cfg.model.kwargs = model_name, dict(kwargs)
    classes = ["no_tumor", "tumor"] if task == "classification" else []
    masks = ["tumor"] if task == "segmentation" else []
    n = len(classes or masks)
    model = create_model(model_name, in_channels=1, num_classes=n, **kwargs)
    card = runs.make_card(
        cfg, in_channels=1, num_classes=n, classes=classes, mask_channels=masks,
        crop=task == "classification",
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / runs.CONFIG_FILE)
    runs.save_run_model(out, model, card)
    return out


def _edited(root: Path, name: str, task: str, edit: Callable[[dict], None]) -> Path:
    run = tiny_run(task, root / name)
    card = json.loads((run / "model.json").read_text())
    edit(card)
    (run / "model.json").write_text(json.dumps(card))
    return run


def broken_runs(root: Path) -> list[Path]:
    """Run folders a user could hand-edit or damage."""
    out = [
        _edited(root, "run_few_classes", "classification", lambda c: c.update(classes=["a"])),
        _edited(
            root, "run_str_size", "classification",
            lambda c: c["preprocessing"].update(image_size="32"),
        ),
        _edited(root, "run_task_changed", "classification", lambda c: c.update(task=SEG)),
        _edited(root, "run_task_bogus", "segmentation", lambda c: c.update(task="detection")),
        _edited(root, "run_no_name", "segmentation", lambda c: c.pop("name")),
        _edited(root, "run_kwargs", "segmentation", lambda c: c.update(kwargs={"depth": "x"})),
        _edited(root, "run_threshold", "segmentation", lambda c: c.update(threshold="high")),
        _edited(root, "run_channels", "segmentation", lambda c: c.update(in_channels=3)),
        _edited(root, "run_unknown_model", "segmentation", lambda c: c.update(name="unet9")),
        _edited(root, "run_card_list", "segmentation", lambda c: c.clear()),
    ]  # fmt: skip
    bad_json = tiny_run("classification", root / "run_bad_json")
    (bad_json / "model.json").write_text("{not json")
    cut = tiny_run("classification", root / "run_cut_weights")
    w = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(w[: len(w) // 3])
    no_cfg = tiny_run("classification", root / "run_no_config")
    (no_cfg / "config.yaml").unlink()
    bad_cfg = tiny_run("classification", root / "run_bad_config")
    (bad_cfg / "config.yaml").write_text("data: [unclosed\n")
    (root / "run_empty").mkdir()
    (root / "run_is_file").write_text("x")
    return [*out, bad_json, cut, no_cfg, bad_cfg, root / "run_empty", root / "run_is_file"]


def _png_bomb(w: int, h: int) -> bytes:
    comp = zlib.compressobj(9)
    row = b"\x00" * (w + 1)
    data = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def _tiff_sized(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((1, 1), np.uint8))
    raw = bytearray(buf.getvalue())
    with tifffile.TiffFile(io.BytesIO(bytes(raw))) as tif:
        for code, value in ((256, w), (257, h)):
            tag = tif.pages[0].tags[code]
            struct.pack_into("<H" if tag.dtype == 3 else "<I", raw, tag.valueoffset, value)
    return bytes(raw)


def _encode(fmt: str, a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    if fmt == "TIFF":
        tifffile.imwrite(buf, a)
    else:
        Image.fromarray(a).save(buf, format=fmt)
    return buf.getvalue()


def _nifti(
    a: np.ndarray, affine: np.ndarray | None = None, row: list[float] | None = None
) -> bytes:
    img = nib.Nifti1Image(a, np.eye(4) if affine is None else affine)
    if row is not None:  # nibabel refuses to build such affines: edit the header
        hdr = img.header
        hdr.set_sform(np.eye(4), code=1)
        hdr.set_qform(np.eye(4), code=0)
        hdr["srow_x"] = row
        img = nib.Nifti1Image(a, None, header=hdr)
    return img.to_bytes()


def _dicom(a: np.ndarray) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID = MRImageStorage, ExplicitVRLittleEndian
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PhotometricInterpretation, ds.SamplesPerPixel = "MR", "MONOCHROME2", 1
    ds.Rows, ds.Columns = a.shape
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.PixelData = a.astype(np.uint16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _valid() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    g = rng.integers(0, 255, (40, 40), dtype=np.uint8)
    vol = rng.random((24, 24, 6)).astype(np.float32)
    return {
        ".png": _encode("PNG", g), ".jpg": _encode("JPEG", g), ".jpeg": _encode("JPEG", g),
        ".bmp": _encode("BMP", g), ".tif": _encode("TIFF", g), ".tiff": _encode("TIFF", g),
        ".dcm": _dicom(g.astype(np.uint16) * 10), ".nii": _nifti(vol),
        ".nii.gz": zlib_gzip(_nifti(vol)),
    }  # fmt: skip


def zlib_gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


def hostile_files(root: Path) -> list[Path]:
    """About 100 files: every extension damaged several ways, plus targeted hostiles."""
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    rng = np.random.default_rng(1)
    for ext, good in _valid().items():
        stem = ext.strip(".").replace(".", "_")
        files[f"empty_{stem}{ext}"] = b""
        for k in range(3):
            files[f"random{k}_{stem}{ext}"] = rng.bytes(int(rng.integers(1, 4000)))
        for frac in (0.1, 0.5, 0.9):
            files[f"cut{int(frac * 100)}_{stem}{ext}"] = good[: int(len(good) * frac)]
        flipped = bytearray(good)
        for at in rng.integers(0, len(good), 12):
            flipped[at] ^= 0xFF
        files[f"flipped_{stem}{ext}"] = bytes(flipped)
    sing, nan_aff = [0.0, 0.0, 0.0, 0.0], [float("nan"), 0.0, 0.0, 0.0]
    vol = np.ones((16, 16, 4), np.float32)
    files.update({
        "bomb_12000.png": _png_bomb(12000, 12000),
        "bomb_30000.tif": _tiff_sized(30000, 30000),
        "zero_size.tif": _tiff_sized(0, 0),
        "one_by_huge.tif": _tiff_sized(1, 2_000_000_000),
        "complex.tif": _encode("TIFF", np.ones((16, 16), np.complex64)),
        "all_nan.tif": _encode("TIFF", np.full((16, 16), np.nan, np.float32)),
        "all_inf.tif": _encode("TIFF", np.full((16, 16), np.inf, np.float32)),
        "stack.tif": _encode("TIFF", np.zeros((12, 16, 16), np.uint8)),
        "one_pixel.png": _encode("PNG", np.zeros((1, 1), np.uint8)),
        "one_row.png": _encode("PNG", np.zeros((1, 300), np.uint8)),
        "rgba16.tif": _encode("TIFF", np.zeros((8, 8, 4), np.uint16)),
        "complex.nii.gz": zlib_gzip(_nifti(np.ones((8, 8, 4), np.complex64))),
        "all_nan.nii.gz": zlib_gzip(_nifti(np.full((8, 8, 4), np.nan, np.float32))),
        "singular.nii.gz": zlib_gzip(_nifti(vol, row=sing)),
        "nan_affine.nii.gz": zlib_gzip(_nifti(vol, row=nan_aff)),
        "four_d.nii.gz": zlib_gzip(_nifti(np.ones((8, 8, 4, 3), np.float32))),
        "two_d.nii.gz": zlib_gzip(_nifti(np.ones((8, 8), np.float32))),
        "one_slice.nii.gz": zlib_gzip(_nifti(np.ones((8, 8, 1), np.float32))),
        "gif.png": b"GIF89a" + rng.bytes(100),
        "text.png": b"hello, I am not a picture\n",
        "scan.gif": b"GIF89a",
        "noext": rng.bytes(200),
        "spaces and ünïcode.png": _valid()[".png"],
        "multi.frame.dcm": b"DICM" * 10,
    })  # fmt: skip
    paths = []
    for name, data in files.items():
        p = root / name
        p.write_bytes(data)
        paths.append(p)
    (root / "folder.png").mkdir(exist_ok=True)
    paths.append(root / "folder.png")
    for name, target in (("dev_zero.png", "/dev/zero"), ("loop.png", "loop.png")):
        link = root / name
        if not link.is_symlink():
            link.symlink_to(target)
        paths.append(link)
    fifo = root / "fifo.png"
    if not fifo.exists():
        os.mkfifo(fifo)
    paths.append(fifo)
    paths.append(root / "missing.png")
    return paths
