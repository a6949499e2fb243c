"""The Lightning ``Trainer`` built from ``cfg.trainer``, and reading our own checkpoints.

Hardware is configuration, not code: ``accelerator``/``devices``/``num_nodes``/
``strategy``/``precision`` go straight to Lightning, which also detects ``torchrun``
and SLURM environments, so one config runs on a laptop CPU or a GPU cluster.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
import pickle
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from braintumor.config import Config
from braintumor.errors import ConfigError
from braintumor.inference.runs import LOGS_DIR

# Lightning announces its hosted logger on every Trainer built without it; the line is
# an advertisement, not information about the run, so it is dropped at the loggers
# Lightning's rank-zero messages go through. Every other message (devices, warnings)
# stays. (Lightning has no flag or environment variable for this line.)
_LIGHTNING_LOGS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
_ADVERT = ("💡 Tip:",)


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).lstrip().startswith(_ADVERT)


def quiet_lightning_adverts() -> None:
    """Drop Lightning's "Tip: try LitLogger" line (idempotent)."""
    for name in _LIGHTNING_LOGS:
        log = logging.getLogger(name)
        if not any(isinstance(f, _DropAdverts) for f in log.filters):
            log.addFilter(_DropAdverts())


def parse_devices(devices: str | int) -> str | int | list[int]:
    """``"auto"`` / ``"2"`` / ``"0,1"`` -> what ``Trainer(devices=...)`` expects."""
    if isinstance(devices, int):
        return devices
    text = str(devices).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if "," in text:
        return [int(d) for d in text.split(",") if d.strip()]
    return text


def build_loggers(out: Path, resume_step: int | None = None) -> list[Logger]:
    """CSV always; TensorBoard too when it is installed (it is not a dependency).

    A resumed run (``resume_step``: the global step of its checkpoint) continues the
    same logs without the steps logged after the checkpoint by the session that was
    killed: TensorBoard drops them itself (``purge_step``); the CSV logger would delete
    its file, so the rows before the checkpoint are carried over.
    """
    csv_logger = CSVLogger(save_dir=str(out), name=LOGS_DIR, version="csv")
    if resume_step is not None:
        _carry_csv_rows(csv_logger, resume_step)
    loggers: list[Logger] = [csv_logger]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        from lightning.pytorch.loggers import TensorBoardLogger

        extra = {"purge_step": resume_step} if resume_step is not None else {}
        loggers.append(
            TensorBoardLogger(save_dir=str(out), name=LOGS_DIR, version="tensorboard", **extra)
        )
    return loggers


def _carry_csv_rows(logger: CSVLogger, before_step: int) -> None:
    """Keep the rows of ``metrics.csv`` logged before ``before_step`` in a resumed run."""
    path = Path(logger.log_dir) / "metrics.csv"
    if not path.is_file():
        return
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit()]
    writer = logger.experiment  # created now: it deletes the old file
    for row in rows:
        step = int(row.pop("step"))
        if step < before_step:
            writer.log_metrics({k: v for k, v in row.items() if v != ""}, step)


def progress_callbacks(enabled: bool) -> list[Callback]:
    if not enabled:
        return []
    if importlib.util.find_spec("rich"):
        from lightning.pytorch.callbacks import RichProgressBar

        return [RichProgressBar()]
    from lightning.pytorch.callbacks import TQDMProgressBar

    return [TQDMProgressBar()]


def build_trainer(
    cfg: Config,
    out: Path,
    callbacks: Sequence[Callback],
    freeze: bool = False,
    batches_per_epoch: int | None = None,
    resume_step: int | None = None,
) -> L.Trainer:
    """A ``Trainer`` for ``cfg``, logging under ``out/logs`` (``resume_step``: see loggers)."""
    t = cfg.trainer
    strategy = t.strategy
    if freeze and strategy == "ddp":
        # Frozen parameters get no gradient; plain DDP would wait for them forever.
        strategy = "ddp_find_unused_parameters_true"
    kwargs: dict[str, Any] = {}
    if t.max_minutes:
        kwargs["max_time"] = timedelta(minutes=t.max_minutes)
    if t.limit_train_batches is not None:
        kwargs["limit_train_batches"] = t.limit_train_batches
    quiet_lightning_adverts()
    try:
        devices = parse_devices(t.devices)
    except ValueError:
        raise ConfigError(
            f"trainer.devices={t.devices!r} is invalid; use auto, a count (1, 4) or ids (0,1)"
        ) from None
    loggers = build_loggers(out, resume_step)
    all_callbacks = [*progress_callbacks(t.progress), *callbacks]
    try:
        return L.Trainer(
            max_epochs=t.epochs,
            accelerator=t.accelerator,
            devices=devices,
            num_nodes=t.num_nodes,
            strategy=strategy,
            precision=t.precision,
            logger=loggers,
            callbacks=all_callbacks,
            enable_progress_bar=t.progress,
            enable_model_summary=t.progress,
            # Never more than an epoch apart (Lightning warns and logs nothing otherwise).
            log_every_n_steps=max(
                1, min(t.log_every_n_steps, batches_per_epoch or t.log_every_n_steps)
            ),
            deterministic=t.deterministic,
            num_sanity_val_steps=0,  # the sanity pass would feed the val metric twice
            default_root_dir=str(out / LOGS_DIR),
            **kwargs,
        )
    except (ValueError, TypeError, MisconfigurationException) as exc:
        # Lightning checks accelerator/devices/strategy/precision here, before any work;
        # its message names the allowed values.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"Lightning rejected the trainer settings (accelerator={t.accelerator!r}, "
            f"devices={t.devices!r}, strategy={strategy!r}, precision={t.precision!r}): "
            f"{first}; fix that trainer.* setting"
        ) from None


def checkpoint_state(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, {"epoch", "global_step"})`` of a checkpoint this run just wrote.

    Read with ``weights_only=True``; only if that refuses an object Lightning stored
    (the file is our own, written moments ago) fall back to a full load.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    meta = {k: ckpt.get(k) for k in ("epoch", "global_step")}
    return ckpt["state_dict"], meta
