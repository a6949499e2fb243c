"""The tables of a comparison report: metrics and training settings per run."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from braintumor.reports.compare import RunInfo

CLS_COLUMNS = [
    ("accuracy", "accuracy"),
    ("balanced_accuracy", "balanced acc."),
    ("precision_macro", "precision (macro)"),
    ("recall_macro", "recall (macro)"),
    ("f1_macro", "F1 macro"),
    ("f1_weighted", "F1 weighted"),
    ("confidence", "mean confidence"),
]
SEG_COLUMNS = [
    ("dice", "Dice"),
    ("iou", "IoU"),
    ("dice_per_patient_mean", "Dice per patient"),
    ("hd95", "HD95 (px)"),
    ("fpr", "FPR"),
    ("fnr", "FNR"),
]


def fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def metrics_table(runs: list[RunInfo], task: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the metrics table of the runs of one task."""
    cols = CLS_COLUMNS if task == "classification" else SEG_COLUMNS
    header = [
        "run",
        "model",
        "data",
        "size",
        "epochs",
        "params",
        *[c[1] for c in cols],
        "train time (s)",
        "images/s",
    ]
    rows = []
    for r in runs:
        m, pre = r.metrics, r.card.get("preprocessing", {})
        params = m.get("params") or r.card.get("params")
        rows.append(
            [
                r.label,
                r.card["name"],
                r.card.get("data", {}).get("spec", "?"),
                fmt(pre.get("image_size")),
                fmt(m.get("epochs_trained")),
                f"{params / 1e6:.2f}M" if params else "n/a",
                *[fmt(m.get(k)) for k, _ in cols],
                fmt(m.get("train_seconds"), 1),
                fmt(r.throughput, 1),
            ]
        )
    return header, rows


def settings_table(runs: list[RunInfo]) -> tuple[list[str], list[list[str]]]:
    """How each run was trained (from its resolved ``config.yaml``)."""
    header = ["run", "model kwargs", "loss", "optimizer", "lr", "batch", "augment", "seed",
              "data options"]  # fmt: skip
    rows = []
    for r in runs:
        c = r.config
        data, optim = c.get("data", {}), c.get("optim", {})
        rows.append([
            r.label,
            json.dumps(c.get("model", {}).get("kwargs") or r.card.get("kwargs") or {}),
            str(c.get("loss", "?")),
            str(optim.get("optimizer", "?")),
            fmt(optim.get("lr")),
            fmt(data.get("batch_size")),
            fmt(data.get("augment")),
            fmt(c.get("seed")),
            json.dumps(data.get("options") or {}),
        ])  # fmt: skip
    return header, rows
