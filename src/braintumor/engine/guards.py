"""Stop a diverging run: a NaN or infinite training loss ends training with one line.

A loss that is not finite poisons every weight within a step, so a run that went on
would save a model that predicts nothing while looking like a normal run. The loss is
checked on the steps Lightning logs (reading a GPU loss forces a device sync, so not
on every step) and on the epoch's mean; the error names the epoch and the settings to
change, and training removes the unfinished run.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from braintumor.config import Config
from braintumor.errors import ConfigError
from braintumor.precision import resolve_precision


class NonFiniteLoss(ConfigError):
    """The training loss became NaN or infinite."""


class FiniteLossGuard(Callback):
    """Raise :class:`NonFiniteLoss` as soon as a checked training loss is not finite."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    def _fail(self, value: float, epoch: int) -> None:
        o, t = self.cfg.optim, self.cfg.trainer
        fixes = [f"lower optim.lr (now {o.lr:g})"]
        if resolve_precision(t.precision, t.accelerator, say=False) not in ("32-true", "32"):
            fixes.append(f"use trainer.precision=32-true (now {t.precision})")
        raise NonFiniteLoss(
            f"training stopped: the training loss became {value} in epoch {epoch + 1} "
            f"of {t.epochs} (the optimisation diverged); {' or '.join(fixes)}; "
            "no model was saved"
        )

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        on_cpu = loss.device.type == "cpu"
        if on_cpu or trainer.global_step % max(1, trainer.log_every_n_steps) == 0:
            value = float(loss.detach())
            if not math.isfinite(value):
                self._fail(value, trainer.current_epoch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get("train_loss")
        if value is not None and not math.isfinite(float(value)):
            self._fail(float(value), trainer.current_epoch)


__all__ = ["FiniteLossGuard", "NonFiniteLoss"]
