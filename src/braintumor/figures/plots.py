"""Learning curves and confusion matrices (matplotlib, Agg canvas): PNG files or arrays.

Figures are drawn on an explicit ``Figure`` + ``FigureCanvasAgg`` rather than through
``pyplot``, so nothing depends on (or changes) the global backend and no window can
open on a headless training node.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _column(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in history:
        v = row.get(key)
        if v is None or v == "":
            continue
        v = float(v)
        if math.isfinite(v):
            xs.append(float(row["epoch"]))
            ys.append(v)
    return xs, ys


def plot_learning_curves(
    history: Sequence[Mapping[str, Any]],
    path: str | Path,
    metrics: Sequence[str] = (),
    title: str | None = None,
) -> Path:
    """Loss (train/val), the chosen val metrics and the learning rate per epoch.

    Args:
        history: one mapping per epoch with ``epoch``, ``lr``, ``train_loss``,
            ``val_loss`` and ``val_<metric>`` entries (missing values are skipped).
        path: PNG file to write.
        metrics: metric names (without ``val_``) for the middle panel; the first one
            is the monitor and gets its best epoch marked.
        title: figure title.
    """
    fig = _figure(13, 3.8)
    ax_loss, ax_met, ax_lr = fig.subplots(1, 3)
    for key, style in (("train_loss", "-"), ("val_loss", "--")):
        xs, ys = _column(history, key)
        if xs:
            ax_loss.plot(xs, ys, style, marker="o", ms=3, label=key.replace("_", " "))
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    for i, name in enumerate(metrics):
        for prefix, style in (("val_", "-"), ("train_", ":")):
            xs, ys = _column(history, prefix + name)
            if xs:
                ax_met.plot(xs, ys, style, marker="o", ms=3, label=f"{prefix[:-1]} {name}")
                if i == 0 and prefix == "val_":
                    best = int(np.nanargmax(ys)) if name != "loss" else int(np.nanargmin(ys))
                    ax_met.axvline(xs[best], color="gray", lw=0.8, ls=":")
    ax_met.set(xlabel="epoch", title="metrics (dotted line: best val epoch)")
    xs, ys = _column(history, "lr")
    if xs:
        ax_lr.plot(xs, ys, marker="o", ms=3)
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="learning rate")
    for ax in (ax_loss, ax_met):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    for ax in (ax_loss, ax_met, ax_lr):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def plot_confusion_matrix(
    cm: Sequence[Sequence[int]] | np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Confusion matrix (rows true, columns predicted), colour = row-normalised rate.

    Each cell shows the count and the fraction of its true class, so a rare class
    with few errors still stands out.
    """
    counts = np.asarray(cm, dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    k = len(class_names)
    side = max(3.5, 0.9 * k + 2)
    fig = _figure(side + 1, side)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(k), labels=list(class_names), rotation=45, ha="right")
    ax.set_yticks(range(k), labels=list(class_names))
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    for i in range(k):
        for j in range(k):
            color = "white" if rates[i, j] > 0.5 else "black"
            ax.text(
                j,
                i,
                f"{counts[i, j]}\n{rates[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=8,
                color=color,
            )
    return _save(fig, path)


def curves_rgb(
    histories: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], keys: Sequence[str]
) -> np.ndarray:
    """One axes per metric in ``keys``, one line per run: an H x W x 3 uint8 image.

    Args:
        histories: (run label, its history rows) pairs: ``epoch`` plus metric columns,
            as in ``history.csv``; empty or non-finite values are skipped.
        keys: the metrics to draw, in order.
    """
    cols = min(3, len(keys))
    rows = int(np.ceil(len(keys) / cols))
    fig = _figure(4.2 * cols, 3.2 * rows)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(rows, cols, i + 1)
        for label, history in histories:
            xs, ys = _column(history, key)
            if xs:
                ax.plot(xs, ys, marker="o", ms=3, label=label)
        ax.set(title=key.replace("_", " "), xlabel="epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _save(fig: Any, path: str | Path) -> Path:
    """Lay out and write a figure, creating its folder."""
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
