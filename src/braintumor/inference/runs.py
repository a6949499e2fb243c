"""Run folders: write the model and its card, read them back.

::

    RUN/config.yaml  splits.json  model.safetensors  model.json  metrics.json  history.csv
        learning_curves.png  confusion_matrix.png (classification)  logs/

Weights are only ever read from ``model.safetensors`` (never a pickle from a user
file); the architecture is rebuilt from the card through the model registry.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import safetensors.torch  # used as safetensors.torch.*: tests swap save_file (full disk)
import torch
from torch import nn

from braintumor import __version__
from braintumor.atomic import atomic_path, write_text_atomic
from braintumor.config import Config, load_config
from braintumor.data.registry import intensity_scale
from braintumor.errors import BrainTumorError, ConfigError, DataError
from braintumor.inference.card import check_card
from braintumor.models.registry import create_model

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


def save_run_model(out: str | Path, model: nn.Module, card: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` (a detached copy of every tensor) and ``model.json``.

    Each file is written to a temporary name and renamed into place, so a crash or a
    full disk never leaves a truncated file over a good one.
    """

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # clone(): tied weights share storage, which safetensors refuses to save twice.
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(out / WEIGHTS_FILE) as tmp:
        safetensors.torch.save_file(state, str(tmp), metadata={"format": "pt"})
    card = {**card, "created": card.get("created") or datetime.now(UTC).isoformat()}
    write_json(out / CARD_FILE, card)
    return out / WEIGHTS_FILE


def _normalisation(spec: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    from braintumor.data.registry import intensity_scale

    scale = intensity_scale(spec)
    how = (
        "z-score of each channel over the brain (non-zero voxels) of each volume"
        if scale == "zscore"
        else "[0, 1]: 8-bit images / 255; 16-bit, float and DICOM images by robust min/max"
    )
    out: dict[str, Any] = {"intensity": scale, "description": how}
    if (options or {}).get("normalize") == "volume":
        out["per_volume"] = True
        out["description"] = (
            how + "; then each channel divided by its 99th percentile over the brain "
            "(non-zero pixels) of the patient's volume and clipped to [0, 1]; a single "
            "slice without its volume is scaled over that slice"
        )
    return out


def card_intensity(card: dict[str, Any]) -> str:
    """The intensity scale a run was trained on (older cards: inferred from the data spec)."""
    norm = card.get("normalisation") or {}
    if norm.get("intensity") in ("unit", "zscore"):
        return str(norm["intensity"])

    return intensity_scale(str(card.get("data", {}).get("spec", "")))


def _preprocessing(cfg: Config, in_channels: int, crop: bool) -> dict[str, Any]:
    pre: dict[str, Any] = {"image_size": cfg.data.image_size, "channels": in_channels, "crop": crop}
    if cfg.data.neighbours:  # 2.5D: the image's channels plus 2 x neighbours FLAIR channels
        pre.update(channels=in_channels - 2 * cfg.data.neighbours, neighbours=cfg.data.neighbours)
    return pre


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

    return {
        "name": cfg.model.name,
        "task": cfg.task,
        "kwargs": dict(cfg.model.kwargs),
        "in_channels": in_channels,
        "num_classes": num_classes,
        "classes": list(classes),
        "mask_channels": list(mask_channels),
        "preprocessing": _preprocessing(cfg, in_channels, crop),
        "normalisation": _normalisation(cfg.data.spec, cfg.data.options),
        "data": {"spec": cfg.data.spec, "options": dict(cfg.data.options)},
        "threshold": cfg.threshold,
        "runtime": runtime_settings(cfg),
        "params": params,
        "metrics": metrics or {},
        "braintumor_version": __version__,
        "created": None,
    }


def runtime_settings(cfg: Config) -> dict[str, str]:
    """How the network ran in training (precision, layout), which prediction repeats."""
    from braintumor.precision import resolve_precision

    return {
        "precision": resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator, say=False),
        "memory_format": cfg.trainer.memory_format,
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

    return create_model(
        card["name"],
        in_channels=int(card["in_channels"]),
        num_classes=int(card["num_classes"]),
        **card.get("kwargs", {}),
    )


def _state_mismatch(exc: RuntimeError) -> str:
    """The first concrete problem of a ``load_state_dict`` error (its first line is generic)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[1] if len(lines) > 1 else (lines[0] if lines else "state dict mismatch")


def load_run(run_dir: str | Path) -> LoadedRun:
    """Rebuild the model of a run folder from its card and ``model.safetensors``."""

    run = Path(run_dir).expanduser()
    if run.is_file():
        raise DataError(
            f"{run} is a file, not a run folder; pass the --out folder of a training run"
        )
    if not run.is_dir():
        raise DataError(f"run folder {run} not found; pass the --out folder of a training run")
    card_path = _require(run, CARD_FILE)
    weights = _require(run, WEIGHTS_FILE)
    cfg_path = _require(run, CONFIG_FILE)
    try:
        card = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{card_path} is not valid JSON ({exc}); retrain the run") from None
    card = check_card(card, card_path)
    cfg = load_config(cfg_path)
    try:
        model = build_model_from_card(card)
    except BrainTumorError as exc:  # e.g. a model name this version does not know
        raise DataError(f"{card_path}: {exc}") from None
    except (TypeError, ValueError, RuntimeError) as exc:  # a hand-edited kwargs value
        raise DataError(
            f"{card_path}: model {card['name']!r} cannot be built from its kwargs "
            f"{card.get('kwargs')} ({exc}); restore model.json or retrain the run"
        ) from None
    try:
        state = safetensors.torch.load_file(str(weights), device="cpu")
    except Exception as exc:  # safetensors raises its own error types
        raise DataError(f"{weights}: cannot read weights ({exc}); retrain the run") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise DataError(
            f"{weights} does not fit model {card['name']!r} of {card_path.name} "
            f"({_state_mismatch(exc)}); retrain the run"
        ) from None
    model.eval()
    return LoadedRun(model=model, card=card, cfg=cfg, path=run)
