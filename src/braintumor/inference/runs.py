"""Run folders: write the model and its card, read them back.

::

    RUN/config.yaml  splits.json  model.safetensors  model.json  metrics.json  history.csv
        learning_curves.png  confusion_matrix.png (classification)  logs/

Weights are only ever read from ``model.safetensors`` (never a pickle from a user
file); the architecture is rebuilt from the card through the model registry.

The names of the run's files and their checked writes are in
:mod:`braintumor.inference.run_files`, the card's contents in
:mod:`braintumor.inference.card_fields`; both are re-exported here, the one module
the rest of the code reads a run through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import safetensors.torch  # used as safetensors.torch.*: tests swap save_file (full disk)
from torch import nn

from braintumor.atomic import atomic_path
from braintumor.config import Config, load_config
from braintumor.errors import BrainTumorError, DataError
from braintumor.inference.card import check_card
from braintumor.inference.card_fields import card_intensity, make_card, runtime_settings
from braintumor.inference.run_files import (
    CARD_FILE,
    CONFIG_FILE,
    CONFUSION_FILE,
    CURVES_FILE,
    CV_FILE,
    HISTORY_FILE,
    LOGS_DIR,
    METRICS_FILE,
    RUN_ARTIFACTS,
    SPLITS_FILE,
    WEIGHTS_FILE,
    check_run_dir,
    holds_model,
    jsonable,
    prepare_run_dir,
    read_history,
    write_history,
    write_json,
)
from braintumor.models.registry import create_model

__all__ = [
    "CARD_FILE",
    "CONFIG_FILE",
    "CONFUSION_FILE",
    "CURVES_FILE",
    "CV_FILE",
    "HISTORY_FILE",
    "LOGS_DIR",
    "METRICS_FILE",
    "RUN_ARTIFACTS",
    "SPLITS_FILE",
    "WEIGHTS_FILE",
    "LoadedRun",
    "build_model_from_card",
    "card_intensity",
    "check_run_dir",
    "holds_model",
    "jsonable",
    "load_run",
    "make_card",
    "prepare_run_dir",
    "read_history",
    "runtime_settings",
    "save_run_model",
    "write_history",
    "write_json",
]


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
