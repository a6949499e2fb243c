"""Checks that run before training touches the disk.

Everything here is cheap and fails with one line naming the setting and the fix.
Training runs these before it writes (or, with ``--force``, removes) anything in the
run folder, so a typo never costs a good run nor leaves half a new one.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import nn

from braintumor.config import Config
from braintumor.errors import BrainTumorError, ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("cosine", "onecycle", "plateau", "none")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
MAX_SEED = 2**32 - 1  # NumPy's seed range, which Lightning seeds along with torch


def _check_ranges(cfg: Config) -> None:
    from braintumor.data.transforms import rotation_ok, zoom_ok  # MONAI: only when training

    d, o, t = cfg.data, cfg.optim, cfg.trainer
    finite = math.isfinite
    # (holds, key, value, what is valid); NaN fails every comparison, as it should.
    rules: list[tuple[bool, str, Any, str]] = [
        (0 <= cfg.seed <= MAX_SEED, "seed", cfg.seed, f"an integer from 0 to {MAX_SEED}"),
        (t.epochs >= 1, "trainer.epochs", t.epochs, "an integer >= 1"),
        (d.batch_size >= 1, "data.batch_size", d.batch_size, "an integer >= 1"),
        (d.image_size >= 1, "data.image_size", d.image_size, "an integer >= 1 (e.g. 128)"),
        (d.num_workers >= 0, "data.num_workers", d.num_workers, "an integer >= 0"),
        (d.limit is None or d.limit >= 1, "data.limit", d.limit, "an integer >= 1 or null"),
        (0 < o.lr and finite(o.lr), "optim.lr", o.lr, "a positive number (e.g. 1e-3)"),
        (
            finite(o.weight_decay) and o.weight_decay >= 0,
            "optim.weight_decay",
            o.weight_decay,
            ">=0",
        ),
        (0 < d.val_fraction < 1, "data.val_fraction", d.val_fraction, "a fraction in (0, 1)"),
        (0 <= d.test_fraction < 1, "data.test_fraction", d.test_fraction, "a fraction in [0, 1)"),
        (0 <= o.momentum < 1, "optim.momentum", o.momentum, "a number in [0, 1)"),
        (o.warmup_epochs >= 0, "optim.warmup_epochs", o.warmup_epochs, "an integer >= 0"),
        (0 <= o.label_smoothing < 1, "optim.label_smoothing", o.label_smoothing, "[0, 1)"),
        (0 < cfg.threshold < 1, "threshold", cfg.threshold, "a probability in (0, 1), e.g. 0.5"),
        (cfg.model.freeze_epochs >= 0, "model.freeze_epochs", cfg.model.freeze_epochs, ">= 0"),
        (
            t.max_minutes is None or (t.max_minutes > 0 and finite(t.max_minutes)),
            "trainer.max_minutes",
            t.max_minutes,
            "a positive number of minutes or null",
        ),
        (
            finite(d.mixup_alpha) and d.mixup_alpha >= 0,
            "data.mixup_alpha",
            d.mixup_alpha,
            "a number >= 0 (0: off; 0.2 is usual)",
        ),
        (
            finite(d.cutmix_alpha) and d.cutmix_alpha >= 0,
            "data.cutmix_alpha",
            d.cutmix_alpha,
            "a number >= 0 (0: off; 1.0 is usual)",
        ),
        (
            rotation_ok(d.rotate_degrees),
            "data.rotate_degrees",
            d.rotate_degrees,
            "degrees in [0, 180] (15 is the default)",
        ),
        (
            zoom_ok(d.scale_range),
            "data.scale_range",
            d.scale_range,
            "a fraction in [0, 1) (0.1 is the default: zoom by up to +-10 %)",
        ),
        (
            finite(cfg.model.aux_mask) and cfg.model.aux_mask >= 0,
            "model.aux_mask",
            cfg.model.aux_mask,
            "a loss weight >= 0 (0: off; e.g. 0.5)",
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
    if cfg.task != "classification" and (cfg.data.mixup_alpha or cfg.data.cutmix_alpha):
        raise ConfigError(
            "data.mixup_alpha / data.cutmix_alpha mix class labels: classification only; "
            "set them to 0 for segmentation"
        )
    if cfg.task != "classification" and cfg.model.aux_mask:
        raise ConfigError(
            "model.aux_mask adds the mask as a classifier's auxiliary target: classification "
            "only (a segmenter is trained on the mask already); set it to 0"
        )
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
    if cfg.trainer.levers not in ("off", "val", "tta"):
        raise ConfigError(f"unknown trainer.levers {cfg.trainer.levers!r}; use off, val or tta")
    accelerator = cfg.trainer.accelerator.lower()
    if accelerator not in ACCELERATORS:
        raise ConfigError(
            f"trainer.accelerator={cfg.trainer.accelerator!r} is not supported; "
            f"use {', '.join(ACCELERATORS)}"
        )
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={cfg.trainer.accelerator!r} but no CUDA GPU is visible; "
            "use --accelerator cpu (or auto)"
        )
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.accelerator='mps' but MPS is not available; use cpu or auto")


def check_device(device: str | None) -> str | None:
    """A ``--device`` for inference (``cpu``, ``cuda``, ``cuda:1``, ``mps``; None: auto).

    Raises:
        ConfigError: an unknown device, or one this machine does not have.
    """
    if device is None or device == "auto":
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"--device {device!r} is not a device; use cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ConfigError(f"--device {device} but no CUDA GPU is visible; use --device cpu")
        if dev.index is not None and dev.index >= n:
            raise ConfigError(f"--device {device} but only {n} CUDA GPU(s) are visible")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps but MPS is not available; use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device {device!r} is not supported; use cpu, cuda, cuda:N or mps")
    return str(dev)


def _available_memory() -> int | None:
    """Bytes of memory available to this process (Linux ``MemAvailable``), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(
    cfg: Config, channels: int, mask_channels: int, available: int | None = None
) -> None:
    """Refuse an image size whose batches cannot fit in memory, before allocating them.

    The estimate is a floor: one float32 batch of images and masks, its augmented copy,
    and the first layer's activations (at least 16 feature maps of the input size) with
    their gradients. A model needs more than that, so a size refused here would fail
    later anyway, after allocating tens of gigabytes.
    """
    available = _available_memory() if available is None else available
    if not available:
        return
    pixels = cfg.data.image_size**2
    per_sample = pixels * 4 * (2 * (channels + mask_channels) + 2 * 16)
    need = cfg.data.batch_size * per_sample
    if need > available:
        gib = 2**30
        raise ConfigError(
            f"data.image_size={cfg.data.image_size} with data.batch_size={cfg.data.batch_size} "
            f"needs more than {need / gib:.1f} GiB for a single batch; {available / gib:.1f} GiB "
            "is available; lower data.image_size (e.g. 256) or data.batch_size"
        )


def build_model(cfg: Config, in_channels: int, num_outputs: int) -> nn.Module:
    """The configured model; a value the architecture rejects is a config error."""
    from braintumor.models.registry import create_model

    try:
        return create_model(
            cfg.model.name, in_channels=in_channels, num_classes=num_outputs, **cfg.model.kwargs
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"model {cfg.model.name!r} rejects model.kwargs={cfg.model.kwargs!r}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}; "
            "fix model.kwargs"
        ) from None


def probe_model(cfg: Config, in_channels: int, num_outputs: int) -> None:
    """Run the configured model once on an empty input of the training size.

    The model is built on the ``meta`` device (no memory, no compute), so an image
    size the architecture cannot take (a U-Net needs a multiple of ``2**depth``, a ViT
    of its patch size, AlexNet at least 63 px) fails here in one line instead of in
    the first training step. Anything else a meta tensor cannot do is left to
    training to report.
    """
    size = cfg.data.image_size
    try:
        with torch.device("meta"):
            model = build_model(cfg, in_channels, num_outputs)  # a bad kwarg: ConfigError
            model.eval()
            with torch.no_grad():
                model(torch.zeros(2, in_channels, size, size))
    except BrainTumorError:
        raise
    except Exception:  # noqa: BLE001 - an op without a meta kernel proves nothing
        return


__all__ = [
    "ACCELERATORS",
    "OPTIMIZERS",
    "SCHEDULERS",
    "build_model",
    "check_config",
    "check_device",
    "check_memory",
    "probe_model",
]
