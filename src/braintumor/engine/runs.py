"""Run folders: write the model and its card, read them back.

::

    RUN/config.yaml  splits.json  model.safetensors  model.json  metrics.json  history.csv
        learning_curves.png  confusion_matrix.png (classification)  logs/

Weights are only ever read from ``model.safetensors`` (never a pickle from a user
file); the architecture is rebuilt from the card through the model registry.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from braintumor.config import Config, load_config
from braintumor.errors import ConfigError, DataError

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
    path.write_text(json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")
    return path


def write_history(path: Path, history: list[dict[str, float]]) -> Path:
    """``history.csv``: epoch, lr, train_loss, val_loss, then the other metrics."""
    first = ["epoch", "lr", "train_loss", "val_loss"]
    rest = sorted({k for row in history for k in row} - set(first))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=first + rest, restval="")
        w.writeheader()
        for row in history:
            w.writerow({k: (int(v) if k == "epoch" else v) for k, v in row.items()})
    return path


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


def prepare_run_dir(out: Path, force: bool) -> Path:
    """Create ``out``; refuse to replace a trained run unless ``force``.

    With ``force`` only the files a run writes are removed; anything else in the
    folder (notes, evaluations of other data) is left alone.
    """
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; choose a folder for the run")
    if out.exists() and holds_model(out):
        if not force:
            raise ConfigError(
                f"run folder {out} already holds a trained model; choose another --out "
                "or pass --force to replace it"
            )
        for name in RUN_ARTIFACTS:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        for p in out.glob("fold_*"):
            if p.is_dir() and (p / CARD_FILE).exists():
                shutil.rmtree(p)
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_run_model(out: str | Path, model: nn.Module, card: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` (a detached copy of every tensor) and ``model.json``."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # clone(): tied weights share storage, which safetensors refuses to save twice.
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    card = {**card, "created": card.get("created") or datetime.now(UTC).isoformat()}
    write_json(out / CARD_FILE, card)
    return out / WEIGHTS_FILE


def make_card(
    cfg: Config,
    *,
    in_channels: int,
    num_classes: int,
    classes: list[str],
    mask_channels: list[str],
    crop: bool,
    metrics: dict[str, Any] | None = None,
    params: int | None = None,
) -> dict[str, Any]:
    """The model card (``model.json``) of a run."""
    from braintumor import __version__

    return {
        "name": cfg.model.name,
        "task": cfg.task,
        "kwargs": dict(cfg.model.kwargs),
        "in_channels": in_channels,
        "num_classes": num_classes,
        "classes": list(classes),
        "mask_channels": list(mask_channels),
        "preprocessing": {"image_size": cfg.data.image_size, "channels": in_channels, "crop": crop},
        "data": {"spec": cfg.data.spec, "options": dict(cfg.data.options)},
        "threshold": cfg.threshold,
        "params": params,
        "metrics": metrics or {},
        "braintumor_version": __version__,
        "created": None,
    }


@dataclass
class LoadedRun:
    """A trained run read back from disk."""

    model: nn.Module  # eval mode, on CPU
    card: dict[str, Any]
    cfg: Config
    path: Path


def _require(run: Path, name: str) -> Path:
    p = run / name
    if not p.is_file() and (run / CV_FILE).is_file():
        raise DataError(
            f"{run} is a cross-validation folder ({name} is in each fold); "
            f"use one of its fold_<i> folders"
        )
    if not p.is_file():
        raise DataError(
            f"{run} is not a run folder: {name} is missing (train one with "
            "'braintumor train ... --out RUN')"
        )
    return p


def build_model_from_card(card: dict[str, Any]) -> nn.Module:
    from braintumor.models.registry import create_model

    return create_model(
        card["name"],
        in_channels=int(card["in_channels"]),
        num_classes=int(card["num_classes"]),
        **card.get("kwargs", {}),
    )


def load_run(run_dir: str | Path) -> LoadedRun:
    """Rebuild the model of a run folder from its card and ``model.safetensors``."""
    from safetensors.torch import load_file

    run = Path(run_dir).expanduser()
    if not run.is_dir():
        raise DataError(f"run folder {run} not found; pass the --out folder of a training run")
    card_path = _require(run, CARD_FILE)
    weights = _require(run, WEIGHTS_FILE)
    cfg_path = _require(run, CONFIG_FILE)
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{card_path} is not valid JSON ({exc}); retrain the run") from None
    cfg = load_config(cfg_path)
    model = build_model_from_card(card)
    try:
        state = load_file(str(weights), device="cpu")
    except Exception as exc:  # safetensors raises its own error types
        raise DataError(f"{weights}: cannot read weights ({exc}); retrain the run") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise DataError(f"{weights} does not fit model {card['name']!r} ({first})") from None
    model.eval()
    return LoadedRun(model=model, card=card, cfg=cfg, path=run)
