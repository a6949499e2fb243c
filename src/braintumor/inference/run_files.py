"""The run folder on disk: the names of its files, and the checked writes that fill it.

::

    RUN/config.yaml  splits.json  model.safetensors  model.json  metrics.json  history.csv
        learning_curves.png  confusion_matrix.png (classification)  logs/

Every file is written atomically (:mod:`braintumor.atomic`); :func:`check_run_dir`
and :func:`prepare_run_dir` refuse, before any work, a folder that cannot become a
run or that would lose a trained one. The model and its card are written and read
back by :mod:`braintumor.inference.runs`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from braintumor.atomic import write_text_atomic
from braintumor.errors import ConfigError

CONFIG_FILE = "config.yaml"
SPLITS_FILE = "splits.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
CURVES_FILE = "learning_curves.png"
CONFUSION_FILE = "confusion_matrix.png"
LOGS_DIR = "logs"
CV_FILE = "cv_metrics.json"
# What a run writes; ``--force`` removes exactly these before training again.
RUN_ARTIFACTS = (
    CONFIG_FILE,
    SPLITS_FILE,
    WEIGHTS_FILE,
    CARD_FILE,
    METRICS_FILE,
    HISTORY_FILE,
    CURVES_FILE,
    CONFUSION_FILE,
    LOGS_DIR,
    CV_FILE,
)


def jsonable(obj: Any) -> Any:
    """Plain JSON types; NaN/inf become null (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return jsonable(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as JSON, atomically (an interrupted write keeps the old file)."""
    return write_text_atomic(path, json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")


def write_history(path: Path, history: list[dict[str, float]]) -> Path:
    """``history.csv``: epoch, lr, train_loss, val_loss, then the other metrics."""
    first = ["epoch", "lr", "train_loss", "val_loss"]
    rest = sorted({k for row in history for k in row} - set(first))
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=first + rest, restval="")
    w.writeheader()
    for row in history:
        w.writerow({k: (int(v) if k == "epoch" else v) for k, v in row.items()})
    return write_text_atomic(path, buf.getvalue())


def read_history(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def holds_model(out: Path) -> bool:
    """True when ``out`` already holds a trained run (single or cross-validated)."""
    return (
        (out / WEIGHTS_FILE).exists()
        or (out / CV_FILE).exists()
        or any((p / WEIGHTS_FILE).exists() for p in out.glob("fold_*"))
    )


def check_run_dir(out: str | Path, force: bool) -> Path:
    """Refuse, before any work, an ``out`` that cannot become a run folder; writes nothing.

    Raises:
        ConfigError: ``out`` is a file, lies under a file or a read-only folder, or
            already holds a trained model and ``force`` is not set.
    """
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; choose a folder for the run")
    if out.exists() and holds_model(out) and not force:
        raise ConfigError(
            f"run folder {out} already holds a trained model; choose another --out "
            "or pass --force to replace it"
        )
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"cannot create run folder {out}: {existing} is a file; choose another --out"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot create run folder {out}: {existing} is not writable; choose another --out"
        )
    return out


def prepare_run_dir(out: Path, force: bool) -> Path:
    """Create ``out``; refuse to replace a trained run unless ``force``.

    With ``force`` only the files a run writes are removed; anything else in the
    folder (notes, evaluations of other data) is left alone. Training calls this
    only once the data and model have been checked, just before its first write, so
    a run that fails early never costs the run it was to replace.
    """
    out = check_run_dir(out, force)
    if out.exists() and holds_model(out):
        for name in RUN_ARTIFACTS:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        for p in out.glob("fold_*"):
            if p.is_dir() and (p / CARD_FILE).exists():
                shutil.rmtree(p)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create run folder {out} ({exc.strerror}); choose another --out"
        ) from None
    return out
