"""``braintumor compare RUN... --out DIR``: one report comparing trained runs.

``report.html`` (self-contained) and ``report.md``: a metrics table per task with
parameters, training time and throughput; learning curves with one set of axes per
metric and one line per run; confusion matrices; best/worst cases with Grad-CAM or
attention maps; and, with ``--pipeline``, the gated-vs-un-gated pipeline table.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from braintumor.errors import BrainTumorError, DataError
from braintumor.figures.html import ReportWriter
from braintumor.figures.plots import curves_rgb
from braintumor.inference.runs import load_run, read_history
from braintumor.pipeline.evaluate import METRICS_FILE, comparison_rows
from braintumor.reports.cases import classification_cases, segmentation_cases
from braintumor.reports.tables import fmt, metrics_table, settings_table

CURVE_PREFERENCE = (
    "val_balanced_accuracy",
    "val_accuracy",
    "val_f1_macro",
    "val_dice",
    "val_iou",
    "val_dice_per_patient_mean",
)


@dataclass
class RunInfo:
    """What the report needs from one run folder."""

    path: Path
    label: str
    card: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    config: dict[str, Any]
    throughput: float | None = None

    @property
    def task(self) -> str:
        return str(self.card["task"])


def read_run(path: str | Path) -> RunInfo:
    """Card, test metrics and history of a run folder (clear error when it is not one)."""
    p = Path(path).expanduser()
    card_path, metrics_path = p / "model.json", p / "metrics.json"
    for f in (card_path, metrics_path):
        if not f.is_file():
            raise DataError(f"{p} is not a finished run folder: {f.name} is missing")
    history: list[dict[str, Any]] = []
    if (p / "history.csv").is_file():
        history = read_history(p / "history.csv")
    config: dict[str, Any] = {}
    if (p / "config.yaml").is_file():
        config = yaml.safe_load((p / "config.yaml").read_text()) or {}
    card, metrics = json.loads(card_path.read_text()), json.loads(metrics_path.read_text())
    return RunInfo(p, p.name, card, metrics, history, config)


def measure_throughput(run_dir: Path, batch: int = 8, seconds: float = 1.0) -> float:
    """Images per second of the model alone on this machine's CPU (batch of ``batch``)."""

    run = load_run(run_dir)
    pre = run.card["preprocessing"]
    x = torch.zeros(batch, int(pre["channels"]), int(pre["image_size"]), int(pre["image_size"]))
    with torch.no_grad():
        run.model(x)  # warm-up: first call allocates
        n, start = 0, time.perf_counter()
        while n == 0 or time.perf_counter() - start < seconds:
            run.model(x)
            n += batch
    return n / (time.perf_counter() - start)


def curves_figure(runs: list[RunInfo], max_panels: int = 6) -> np.ndarray | None:
    """One axes per metric (train loss, val loss, val metrics), one line per run; None
    when no run has a history to draw."""
    keys: list[str] = []
    present = {k for r in runs for row in r.history for k, v in row.items() if v not in ("", None)}
    for k in ("train_loss", "val_loss", *CURVE_PREFERENCE):
        if k in present and len(keys) < max_panels:
            keys.append(k)
    if not keys:
        return None
    return curves_rgb([(r.label, r.history) for r in runs], keys)


def _confusion(r: RunInfo) -> np.ndarray | Path | None:
    png = r.path / "confusion_matrix.png"
    if png.is_file():
        return png
    return None


def _pipeline_section(doc: ReportWriter, pipeline: Path) -> None:

    f = pipeline if pipeline.is_file() else pipeline / METRICS_FILE
    if not f.is_file():
        raise DataError(
            f"--pipeline {pipeline}: no {METRICS_FILE} there; run "
            "'braintumor pipeline ... --evaluate --out DIR' first"
        )
    res = json.loads(f.read_text())
    doc.heading("Two-stage pipeline: gated vs segmenter alone")
    doc.paragraph(
        f"Classifier {res['classifier']} gates segmenter {res['segmenter']} at tumor "
        f"probability >= {res['threshold']}; {res['n_images']} slices "
        f"({res['n_tumor_slices']} with tumor, {res['n_healthy_slices']} healthy) of "
        f"{res['n_patients']} patients; split: {res['split_source']}."
    )
    doc.table(["metric", "segmenter alone", "gated"], comparison_rows(res))
    g = res["gate"]
    doc.paragraph(
        f"Gate as a detector: sensitivity {fmt(g['sensitivity'])}, specificity "
        f"{fmt(g['specificity'])}; tumor slices emptied although the segmenter found "
        f"tumor: {g['wrongly_emptied_where_segmenter_found_tumor']}.",
        note=True,
    )
    if res.get("classifier_saw_test_slices"):
        doc.paragraph(
            f"Warning: the classifier was trained or validated on "
            f"{res['classifier_saw_test_slices']} of these slices.",
            note=True,
        )


def compare_runs(
    run_dirs: list[str | Path],
    out: str | Path,
    *,
    pipeline: str | Path | None = None,
    cases: int = 2,
    throughput_seconds: float = 1.0,
) -> tuple[Path, Path]:
    """Write ``out/report.html`` and ``out/report.md`` comparing ``run_dirs``.

    Args:
        run_dirs: run folders (classification and/or segmentation).
        out: report folder.
        pipeline: a folder holding ``pipeline_metrics.json`` (or the file itself).
        cases: best/worst (or right/wrong) cases per run; 0 for none.
        throughput_seconds: time spent measuring each model's images/s; 0 skips it
            (runs whose metrics.json records ``images_per_second`` use that).
    """

    if not run_dirs:
        raise DataError("compare needs at least one run folder")
    runs = [read_run(p) for p in run_dirs]
    labels = [r.label for r in runs]
    for r in runs:  # two runs called "run" in different folders: add the parent name
        if labels.count(r.label) > 1:
            r.label = f"{r.path.parent.name}/{r.label}"
    for r in runs:
        m = r.metrics
        if m.get("images_per_second"):
            r.throughput = float(m["images_per_second"])
        elif throughput_seconds > 0:
            r.throughput = measure_throughput(r.path, seconds=throughput_seconds)
    doc = ReportWriter("braintumor: run comparison")
    doc.paragraph(
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from "
        f"{len(runs)} run(s). Metrics are each run's test split (metrics.json).",
        note=True,
    )
    for task in ("classification", "segmentation"):
        group = [r for r in runs if r.task == task]
        if not group:
            continue
        doc.heading(f"{task.capitalize()} runs")
        doc.table(*metrics_table(group, task))
        doc.table(*settings_table(group))
        doc.paragraph(
            "images/s: model forward pass only, batch of 8, on this machine's CPU "
            "(measured when the report was made unless metrics.json records it).",
            note=True,
        )
        curves = curves_figure(group)
        if curves is not None:
            doc.heading("Learning curves", 3)
            doc.figure(curves, f"{task}: learning curves, one line per run")
        if task == "classification":
            mats = [(r, _confusion(r)) for r in group]
            if any(png is not None for _, png in mats):
                doc.heading("Confusion matrices (test split)", 3)
                for r, png in mats:
                    if png is not None:
                        doc.figure(png, f"{r.label}: confusion matrix", width=480)
        if cases:
            doc.heading("Cases and explanations", 3)
            for r in group:
                try:
                    found = (
                        classification_cases if task == "classification" else segmentation_cases
                    )(r.path, cases)
                except BrainTumorError as exc:  # data moved or deleted since training
                    doc.paragraph(f"{r.label}: no cases ({exc})", note=True)
                    continue
                if not found:
                    doc.paragraph(
                        f"{r.label}: no test case to show (no test slice with tumor)"
                        if task == "segmentation"
                        else f"{r.label}: no test case to show",
                        note=True,
                    )
                for rgb, caption in found:
                    doc.figure(rgb, f"{r.label} - {caption}")
    if pipeline is not None:
        _pipeline_section(doc, Path(pipeline).expanduser())
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    return doc.write(out)
