"""``braintumor demo``: the whole toolkit, offline, on the built-in synthetic phantoms.

1. trains a small 4-class classifier and a small U-Net (engine ``train``);
2. evaluates the two-stage pipeline (gated vs un-gated) on the segmenter's test split;
3. runs the pipeline on two test patients written as BraTS-style NIfTI case folders;
4. explains a few test slices (Grad-CAM of the classifier);
5. writes the comparison report.

Both models see the same phantom patients (same seed and size), so they share one
patient split and the classifier never trained on the pipeline's test patients.
``--quick`` (tiny images, one epoch) checks that everything runs; its numbers mean
nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from rich.console import Console

from braintumor.config import Config, load_config
from braintumor.data import create_format
from braintumor.data.io import write_nifti
from braintumor.data.splits import load_splits
from braintumor.engine.train import train
from braintumor.explain import explain_image
from braintumor.figures.overlay import enlarge, heatmap_rgb
from braintumor.inference.predictor import Predictor
from braintumor.pipeline.evaluate import evaluate_pipeline, format_table
from braintumor.pipeline.run import run_pipeline
from braintumor.reports.compare import compare_runs, read_run


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo (the full defaults take a few minutes on 2 CPU cores).

    No augmentation: phantoms are unlimited, so more patients replace it, and the
    augmentation pipeline made a CPU epoch about 6x slower than the model itself
    (measured on the classifier); the classifier reached 0.98 balanced accuracy
    without it. The segmenter is a plain U-Net with BatchNorm: the
    attention U-Net's depthwise 7x7 convolutions are slow to train on a CPU (backward
    about 4x slower per step) and reached a lower Dice in the same time.
    """

    n_patients: int = 160  # synthetic patients (balanced over the 4 classes)
    slices: int = 6  # axial slices per patient
    size: int = 64  # side of the generated slices and of the model input
    # Three conv stages keep an 8 x 8 map for Grad-CAM at 64 px (the 4-stage default: 2 x 2).
    cls_model: str = "custom_cnn"
    cls_kwargs: tuple[tuple[str, Any], ...] = (
        ("stages", [[16, 5, 2], [32, 3, 1], [64, 3, 1]]), ("hidden", [64, 32]),
    )  # fmt: skip
    cls_epochs: int = 20
    cls_lr: float = 0.003
    seg_model: str = "unet"
    seg_kwargs: tuple[tuple[str, Any], ...] = (
        ("n_filters", 8), ("depth", 3), ("batch_norm", True),
    )  # fmt: skip
    seg_epochs: int = 12
    seg_lr: float = 0.01
    batch_size: int = 16
    augment: bool = False
    cases: int = 2  # best/worst cases per run in the report


QUICK = DemoSettings(
    n_patients=8,
    slices=3,
    size=32,
    cls_kwargs=(("stages", [[8, 5, 2], [8, 3, 1]]), ("hidden", [8, 8])),
    cls_epochs=1,
    seg_kwargs=(("n_filters", 4), ("depth", 2)),
    seg_epochs=1,
    batch_size=8,
    cases=1,
)
FULL = DemoSettings()


def _config(s: DemoSettings, task: str, progress: bool) -> Config:
    model, kwargs, epochs, lr = (
        (s.cls_model, s.cls_kwargs, s.cls_epochs, s.cls_lr)
        if task == "classification"
        else (s.seg_model, s.seg_kwargs, s.seg_epochs, s.seg_lr)
    )
    cfg = load_config(
        None,
        [
            f"task={task}",
            f"model.name={model}",
            "data.spec=synthetic",
            f"data.image_size={s.size}",
            f"data.batch_size={s.batch_size}",
            f"trainer.epochs={epochs}",
            f"trainer.progress={progress}",
            "trainer.accelerator=cpu",
            f"optim.lr={lr}",
            f"data.augment={s.augment}",
            "optim.warmup_epochs=1",
        ],
    )
    cfg.model.kwargs = dict(kwargs)
    # Same patients for both tasks: target/classes do not change the generated patients.
    cfg.data.options = {
        "n_patients": s.n_patients,
        "slices_per_patient": s.slices,
        "size": s.size,
        "seed": 0,
        "target": "binary",
        "classes": "4class",
    }
    return cfg


def _write_case(fmt: Any, records: list[Any], folder: Path) -> Path:
    """One synthetic patient as a BraTS-style case folder (four NIfTI sequences)."""

    images = np.stack([fmt.load(r)["image"] for r in records])  # Z x 4 x H x W
    spacing = 200.0 / images.shape[-1]  # a ~20 cm field of view
    affine = np.diag([spacing, spacing, 5.0, 1.0])
    folder.mkdir(parents=True, exist_ok=True)
    for c, name in enumerate(("flair", "t1", "t1ce", "t2")):
        vol = images[:, c].transpose(2, 1, 0)  # slice z = vol[:, :, z].T, as brats reads it
        write_nifti(folder / f"{folder.name}_{name}.nii.gz", vol.astype(np.float32), affine)
    return folder


def _explain_slices(
    cls_run: Path, seg_run: Path, fmt: Any, test: list[Any], out: Path
) -> list[Path]:
    """Grad-CAM of the classifier (and gate maps of an attention U-Net) on test slices."""

    no = fmt.classes.index("notumor")
    tumor = [r for r in test if r.label != no][:2]
    healthy = [r for r in test if r.label == no][:1]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for run in (cls_run, seg_run):
        pred = Predictor.from_run(run, "cpu")
        if pred.card["task"] == "segmentation" and pred.card["name"] != "attention_unet":
            continue  # only attention U-Nets have a map to show (their gates)
        for r in tumor + (healthy if pred.is_classification else []):
            img = fmt.load(r)["image"]
            ex = explain_image(pred, img)
            name = f"{r.patient_id}_s{r.extra['slice_index']}_{ex.method}.png"
            # Saved enlarged (integer factor) so that 64 px phantoms are readable.
            Image.fromarray(enlarge(heatmap_rgb(img, ex.heat), 256)).save(out / name)
            written.append(out / name)
    return written


def run_demo(
    out: str | Path = "braintumor-demo", quick: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Run the demo into ``out``; returns the key paths and headline numbers."""

    s = QUICK if quick else FULL
    # One intra-op thread: these models are too small to gain from more, and on a busy
    # machine competing OpenMP threads made training several times slower (measured).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(s, Path(out).expanduser(), progress)
    finally:
        torch.set_num_threads(threads)


def _run(s: DemoSettings, out: Path, progress: bool) -> dict[str, Any]:

    con = Console(stderr=True)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def step(i: int, text: str) -> None:
        con.print(f"[bold cyan][{i}/5][/] {text}  [dim]({time.perf_counter() - start:.0f} s)[/]")

    step(1, f"training classifier {s.cls_model} ({s.cls_epochs} epochs, {s.size} px)")
    cls_run = train(_config(s, "classification", progress), out / "classifier", force=True)
    step(1, f"training segmenter {s.seg_model} ({s.seg_epochs} epochs)")
    seg_cfg = _config(s, "segmentation", progress)
    seg_run = train(seg_cfg, out / "segmenter", force=True)

    step(2, "two-stage pipeline: gated vs un-gated on the test split")
    opts = seg_cfg.data.options
    res = evaluate_pipeline(
        cls_run, seg_run, "synthetic", out / "pipeline", options=opts, show_progress=progress
    )
    con.print(format_table(res))

    step(3, "pipeline on two test patients written as NIfTI case folders")
    fmt = create_format("synthetic", **opts)
    test = load_splits(seg_run / "splits.json", fmt.records())["test"]
    by_patient: dict[str, list[Any]] = {}
    for r in test:
        by_patient.setdefault(r.patient_id, []).append(r)
    tumor_pid = next((p for p, rs in by_patient.items() if rs[0].extra["kind"] != "notumor"), None)
    healthy_pid = next(
        (p for p, rs in by_patient.items() if rs[0].extra["kind"] == "notumor"), None
    )
    cases = [
        _write_case(fmt, by_patient[p], out / "inputs" / f"demo_{p}")
        for p in (tumor_pid, healthy_pid)
        if p is not None
    ]
    run_pipeline(cls_run, seg_run, cases, out / "findings", show_progress=progress)

    step(4, "explanations: Grad-CAM of the classifier on test slices")
    explained = _explain_slices(cls_run, seg_run, fmt, test, out / "explain")

    step(5, "comparison report")
    html, md = compare_runs(
        [cls_run, seg_run],
        out / "report",
        pipeline=out / "pipeline",
        cases=s.cases,
        throughput_seconds=0.2 if s is QUICK else 1.0,
    )
    summary = {
        "seconds": round(time.perf_counter() - start, 1),
        "classifier": str(cls_run),
        "segmenter": str(seg_run),
        "classifier_balanced_accuracy": read_run(cls_run).metrics.get("balanced_accuracy"),
        "classifier_accuracy": read_run(cls_run).metrics.get("accuracy"),
        "segmenter_dice": read_run(seg_run).metrics.get("dice"),
        "segmenter_dice_per_patient": read_run(seg_run).metrics.get("dice_per_patient_mean"),
        "pipeline": str(out / "pipeline" / "pipeline_metrics.json"),
        "findings": str(out / "findings"),
        "explain": [str(p) for p in explained],
        "report_html": str(html),
        "report_md": str(md),
    }
    return summary
