"""End-to-end speed for ``benchmarks/speed.py``: the engine, ``predict`` and ``pipeline``.

Run folders for ``predict``/``pipeline`` hold randomly initialised networks: the
figures are seconds, not masks, and a random network costs what a trained one does.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from braintumor.config import Config, load_config, save_config
from braintumor.inference.runs import make_card, save_run_model
from braintumor.models.registry import create_model

FOUR = ["glioma", "meningioma", "notumor", "pituitary"]


def engine_rate(
    work: Path, *, n_patients: int, slices: int, size: int, epochs: int, sets: list[str]
) -> dict[str, Any]:
    """``train()`` of ``unet`` on synthetic slices: training images per second of fit.

    The preprocessing cache is built before the clock starts (a first run pays it
    once); the fit includes the per-epoch validation, which is part of the engine.
    """
    from braintumor.engine.train import train

    out = work / f"engine-{abs(hash(tuple(sets))) % 10**8}"
    cfg = load_config(
        None,
        [
            "task=segmentation",
            "model.name=unet",
            f"data.options={{n_patients: {n_patients}, slices_per_patient: {slices}, "
            f"size: {size}, modalities: 4}}",
            f"data.image_size={size}",
            "data.batch_size=16",
            f"data.cache_dir={work / 'cache'}",
            f"trainer.epochs={epochs}",
            "trainer.progress=false",
            "trainer.accelerator=cpu",
            *sets,
        ],
    )
    metrics = train(cfg, out, force=True)
    metrics = json.loads((out / "metrics.json").read_text())
    n_train = json.loads((out / "splits.json").read_text())["counts"]["train"]
    seen = (n_train // 16) * 16 if n_train > 16 else n_train  # the loader drops a last part
    seconds = float(metrics["train_seconds"])
    return {
        "n_train": n_train,
        "epochs": epochs,
        "train_seconds": seconds,
        "img_s": seen * epochs / seconds,
        "settings": sets,
    }


def write_run(
    folder: Path,
    task: str,
    name: str,
    in_ch: int,
    names: list[str],
    size: int,
    spec: str,
    sets: list[str],
    **kw: Any,
) -> Path:
    """A run folder with a random network, written the way training writes one."""
    cfg = load_config(None, [f"task={task}", f"model.name={name}", *sets])
    cfg.model.kwargs, cfg.data.image_size, cfg.data.spec = dict(kw), size, spec
    torch.manual_seed(0)  # the same weights every run, so outputs compare across runs
    model = create_model(name, in_channels=in_ch, num_classes=len(names), **kw)
    card = make_card(
        cfg,
        in_channels=in_ch,
        num_classes=len(names),
        classes=names if task == "classification" else [],
        mask_channels=names if task == "segmentation" else [],
        crop=task == "classification",
    )
    folder.mkdir(parents=True, exist_ok=True)
    save_run_model(folder, model, card)
    save_config(cfg, folder / "config.yaml")
    return folder


def _phantom_pngs(folder: Path, n: int) -> list[Path]:
    """``n`` 256-px FLAIR slices of phantom brains (tumors and not) as 8-bit PNGs."""
    from PIL import Image

    from braintumor.data import phantom

    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"slice{i:03d}.png" for i in range(n)]
    if all(f.exists() for f in files):
        return files
    rng = np.random.default_rng(0)
    i = 0
    while i < n:
        kind = phantom.CLASSES[i // 16 % len(phantom.CLASSES)]
        for sl in phantom.generate_patient(rng, kind, n_slices=16, size=256):
            if i < n:
                flair = np.asarray(sl["image"])[0]
                Image.fromarray((np.clip(flair, 0, 1) * 255).astype(np.uint8)).save(files[i])
                i += 1
    return files


def _noise_pngs(folder: Path, n: int) -> list[Path]:
    """``n`` 256-px PNGs of uniform noise: the worst case for PNG decoding and encoding."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        f = folder / f"slice{i:03d}.png"
        if not f.exists():
            Image.fromarray(rng.integers(0, 255, (256, 256), dtype=np.uint8)).save(f)
        files.append(f)
    return files


def predict_rate(work: Path, n: int, size: int, sets: list[str], inputs: str) -> dict[str, Any]:
    """``predict`` on ``n`` PNG slices (read, predict, write masks and overlays).

    ``inputs``: ``"phantom"`` (brain slices, black around the head, as MRI PNGs are) or
    ``"noise"`` (uniform noise, which no PNG compresses: the worst case for the writer).
    """
    from braintumor.inference.predict_files import predict_inputs
    from braintumor.inference.predictor import Predictor

    make = _phantom_pngs if inputs == "phantom" else _noise_pngs
    files = make(work / f"pngs_{inputs}", n)
    run = write_run(work / "seg_run", "segmentation", "unet", 1, ["tumor"], size, "lgg", sets)
    predictor = Predictor.from_run(run, device="cpu")  # start-up: not timed
    start = time.perf_counter()
    predict_inputs(predictor, files, work / f"pred_out_{inputs}")
    seconds = time.perf_counter() - start
    return {
        "n": n,
        "inputs": inputs,
        "seconds": seconds,
        "img_s": n / seconds,
        "precision": predictor.precision,
    }


def pipeline_seconds(
    work: Path, inputs: list[Path], seg_ch: int, masks: list[str], spec: str, sets: list[str]
) -> float:
    """Seconds of ``run_pipeline`` (read, classify, segment, write) on ``inputs``."""
    from braintumor.pipeline.run import run_pipeline

    tag = f"{spec}{seg_ch}"
    # The gate sees the same channels as the segmenter (4 BraTS sequences, 3 LGG ones).
    cls = write_run(
        work / f"cls_{tag}", "classification", "custom_cnn", seg_ch, FOUR, 128, spec, sets
    )
    seg = write_run(work / f"seg_{tag}", "segmentation", "unet", seg_ch, masks, 128, spec, sets)
    start = time.perf_counter()
    run_pipeline(cls, seg, inputs, work / f"pipe_{tag}", show_progress=False, device="cpu")
    return time.perf_counter() - start


def lgg_patient(root: Path) -> list[Path]:
    """The image slices of the first LGG patient (not the masks)."""
    folders = sorted(p for p in (root / "kaggle_3m").glob("TCGA_*") if p.is_dir())
    if not folders:
        return []
    return sorted(f for f in folders[0].glob("*.tif") if not f.name.endswith("_mask.tif"))


def torch_threads() -> int:
    return torch.get_num_threads()


__all__ = ["Config", "engine_rate", "lgg_patient", "pipeline_seconds", "predict_rate"]
