"""Checks that run before training touches the disk.

Everything here is cheap and fails with one line naming the setting and the fix.
Training runs these before it writes (or, with ``--force``, removes) anything in the
run folder, so a typo never costs a good run nor leaves half a new one.
"""

from __future__ import annotations

from typing import Any

import torch

from braintumor.config import Config
from braintumor.errors import BrainTumorError, ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("cosine", "onecycle", "plateau", "none")


def _check_ranges(cfg: Config) -> None:
    d, o, t = cfg.data, cfg.optim, cfg.trainer
    # (holds, key, value, what is valid); NaN fails every comparison, as it should.
    rules: list[tuple[bool, str, Any, str]] = [
        (t.epochs >= 1, "trainer.epochs", t.epochs, "an integer >= 1"),
        (d.batch_size >= 1, "data.batch_size", d.batch_size, "an integer >= 1"),
        (d.image_size >= 1, "data.image_size", d.image_size, "an integer >= 1 (e.g. 128)"),
        (d.num_workers >= 0, "data.num_workers", d.num_workers, "an integer >= 0"),
        (d.limit is None or d.limit >= 1, "data.limit", d.limit, "an integer >= 1 or null"),
        (o.lr > 0, "optim.lr", o.lr, "a positive number (e.g. 1e-3)"),
        (o.weight_decay >= 0, "optim.weight_decay", o.weight_decay, "a number >= 0"),
        (0 <= o.momentum < 1, "optim.momentum", o.momentum, "a number in [0, 1)"),
        (o.warmup_epochs >= 0, "optim.warmup_epochs", o.warmup_epochs, "an integer >= 0"),
        (0 <= o.label_smoothing < 1, "optim.label_smoothing", o.label_smoothing, "[0, 1)"),
        (0 < cfg.threshold < 1, "threshold", cfg.threshold, "a probability in (0, 1), e.g. 0.5"),
        (cfg.model.freeze_epochs >= 0, "model.freeze_epochs", cfg.model.freeze_epochs, ">= 0"),
        (
            t.max_minutes is None or t.max_minutes > 0,
            "trainer.max_minutes",
            t.max_minutes,
            "a positive number of minutes or null",
        ),
        (0 <= t.ema_decay < 1, "trainer.ema_decay", t.ema_decay, "[0, 1) (0: no EMA)"),
        (t.patience >= 0, "trainer.patience", t.patience, "an integer >= 0 (0: no early stop)"),
        (t.log_every_n_steps >= 1, "trainer.log_every_n_steps", t.log_every_n_steps, ">= 1"),
        (t.num_nodes >= 1, "trainer.num_nodes", t.num_nodes, "an integer >= 1"),
        (
            t.limit_train_batches is None or t.limit_train_batches > 0,
            "trainer.limit_train_batches",
            t.limit_train_batches,
            "a number > 0 or null",
        ),
    ]
    for holds, key, value, valid in rules:
        if not holds:
            raise ConfigError(f"{key}={value!r} is invalid; use {valid}")


def check_config(cfg: Config) -> None:
    """Fail early, with one clear line, on settings that cannot work."""
    from braintumor.engine.tasks import check_monitor
    from braintumor.losses import LOSSES
    from braintumor.models.registry import model_entry

    if cfg.task not in ("classification", "segmentation"):
        raise ConfigError(f"unknown task {cfg.task!r}; use classification or segmentation")
    entry = model_entry(cfg.model.name)  # unknown name -> error listing valid names
    if entry.task != cfg.task:
        raise ConfigError(
            f"model {cfg.model.name!r} is a {entry.task} model but the task is {cfg.task!r}; "
            f"pick a {cfg.task} model (braintumor models --task {cfg.task}) or change --task"
        )
    if cfg.folds == 1 or cfg.folds < 0:
        raise ConfigError(f"folds must be 0 (no cross-validation) or >= 2, got {cfg.folds}")
    _check_ranges(cfg)
    if cfg.loss is not None:
        LOSSES.get(cfg.loss)  # unknown name -> error listing valid names
    check_monitor(cfg.task, cfg.trainer.monitor)
    if cfg.optim.optimizer.lower() not in OPTIMIZERS:
        raise ConfigError(
            f"unknown optim.optimizer {cfg.optim.optimizer!r}; use {', '.join(OPTIMIZERS)}"
        )
    if cfg.optim.scheduler.lower() not in SCHEDULERS:
        raise ConfigError(
            f"unknown optim.scheduler {cfg.optim.scheduler!r}; use {', '.join(SCHEDULERS)}"
        )
    if cfg.trainer.accelerator.lower() in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={cfg.trainer.accelerator!r} but no CUDA GPU is visible; "
            "use --accelerator cpu (or auto)"
        )


def probe_model(cfg: Config, in_channels: int, num_outputs: int) -> None:
    """Run the configured model once on an empty input of the training size.

    The model is built on the ``meta`` device (no memory, no compute), so an image
    size the architecture cannot take (a U-Net needs a multiple of ``2**depth``, a ViT
    of its patch size, AlexNet at least 63 px) fails here in one line instead of in
    the first training step. Anything else a meta tensor cannot do is left to
    training to report.
    """
    from braintumor.models.registry import create_model

    size = cfg.data.image_size
    try:
        with torch.device("meta"):
            model = create_model(
                cfg.model.name, in_channels=in_channels, num_classes=num_outputs, **cfg.model.kwargs
            )
            model.eval()
            with torch.no_grad():
                model(torch.zeros(2, in_channels, size, size))
    except BrainTumorError:
        raise
    except Exception:  # noqa: BLE001 - an op without a meta kernel proves nothing
        return


__all__ = ["OPTIMIZERS", "SCHEDULERS", "check_config", "probe_model"]
