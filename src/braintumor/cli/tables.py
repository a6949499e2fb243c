"""What the run commands print: the model list (``braintumor models``), the headline
metrics of one evaluation, and the mean ± std of a cross-validation.

Heavy imports (torch, the engine's task table) happen inside the functions so that
``--help`` stays fast.
"""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def model_rows(task: str | None = None) -> list[dict[str, Any]]:
    """name, task, parameter count and description.

    Sizes are those of each builder's own defaults (e.g. ResNet-50: 3 channels,
    1000 classes, the familiar 25.6 M), built on the meta device (no memory).
    """
    import torch

    from braintumor.errors import ConfigError
    from braintumor.models.registry import count_params, list_models, model_entry

    if task is not None and task not in ("classification", "segmentation"):
        raise ConfigError(f"unknown task {task!r}; use classification or segmentation")
    rows = []
    for name in list_models(task):
        entry = model_entry(name)
        try:
            # The meta device allocates no memory: sizing ViT-B/16 costs nothing.
            with torch.device("meta"):
                params: int | None = count_params(entry.builder())
        except Exception:  # a builder that cannot run on "meta": build it for real
            try:
                params = count_params(entry.builder())
            except Exception:
                params = None
        text = "?" if params is None else f"{params / 1e6:.2f} M"
        rows.append(
            {
                "name": name,
                "task": entry.task,
                "params": params,
                "params_text": text,
                "description": entry.description,
            }
        )
    return rows


def print_metrics(console: Console, metrics: dict[str, Any], task: str, split: str) -> None:
    """The headline metrics of one evaluation as a small table."""
    from braintumor.engine.tasks import TASKS

    keys = ["loss", *TASKS[task].headline, "dice_per_patient_mean", "n"]
    table = Table("metric", "value", title=f"{task} metrics ({split})")
    for k in keys:
        if k in metrics:
            table.add_row(k, _fmt(metrics[k]))
    console.print(table)
    if task == "classification" and "per_class" in metrics:
        pc = Table("class", "precision", "recall", "f1", "support", title="per class")
        for name, v in metrics["per_class"].items():
            pc.add_row(
                name, _fmt(v["precision"]), _fmt(v["recall"]), _fmt(v["f1"]), str(v["support"])
            )
        console.print(pc)


def print_cv_summary(console: Console, summary: dict[str, Any]) -> None:
    """Mean ± std over the folds of every metric."""
    table = Table(
        "metric",
        "mean ± std",
        "folds",
        title=f"{summary['folds']}-fold cross-validation (test split of each fold)",
    )
    for name, v in summary["metrics"].items():
        values = ", ".join(_fmt(x) for x in v["values"])
        table.add_row(name, f"{_fmt(v['mean'])} ± {_fmt(v['std'])}", values)
    console.print(table)
