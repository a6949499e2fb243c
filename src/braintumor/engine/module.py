"""One ``LightningModule`` for every model and both tasks.

The network knows nothing about training; the :class:`~braintumor.engine.tasks.Task`
knows what differs between classification and segmentation; this module does the
rest: loss, optimiser, schedule, freeze-then-unfreeze, per-epoch logging and the
per-epoch history that becomes ``history.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from braintumor.config import OptimConfig
from braintumor.data.mixing import BatchMixer
from braintumor.engine.aux_mask import AuxMaskHead
from braintumor.engine.evaluators import Evaluator
from braintumor.engine.schedule import build_scheduler
from braintumor.engine.tasks import (
    COUNT_KEYS,
    Task,
    scalar_metrics,
)
from braintumor.errors import ConfigError
from braintumor.losses import deep_supervision_loss
from braintumor.precision import as_layout, set_layout, use_channels_last


def can_freeze(model: nn.Module) -> bool:
    """True when the model says which parameters form its head."""
    return hasattr(model, "freeze_backbone") or hasattr(model, "head_parameters")


def set_frozen(model: nn.Module, frozen: bool) -> None:
    """Train only the head (``frozen``) or everything."""
    if hasattr(model, "freeze_backbone"):
        model.freeze_backbone(frozen)  # knows e.g. vgg16_ft's extra trainable block
        return
    head = {id(p) for p in model.head_parameters()}  # type: ignore[operator]
    for p in model.parameters():
        p.requires_grad_(not frozen or id(p) in head)


class BrainTumorModule(L.LightningModule):
    """Train/validate any registered model on either task.

    Args:
        model: the network (returns logits).
        task: the task object.
        optim: optimiser and schedule settings.
        epochs: total epochs (for the cosine schedule).
        loss: loss name (None: the task's default).
        class_weights: per-class loss weights (classification), or None.
        freeze_epochs: train only the head for this many epochs.
        memory_format: ``auto`` / ``channels_last`` / ``contiguous`` (braintumor/precision.py).
        compile: run the network's forward through ``torch.compile``.
        max_minutes: the time budget; ``cosine``/``onecycle`` then span it (see
            :mod:`braintumor.engine.schedule`).
        precision: the resolved training precision (``auto`` layout depends on it).
        mixer: mixup / cutmix of training batches (classification), or None.
        aux_mask: the auxiliary mask head of a classifier (``model.aux_mask``), or None.
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        optim: OptimConfig,
        epochs: int,
        loss: str | None = None,
        class_weights: Sequence[float] | None = None,
        freeze_epochs: int = 0,
        memory_format: str = "contiguous",
        compile: bool = False,
        max_minutes: float | None = None,
        precision: str = "32-true",
        mixer: BatchMixer | None = None,
        aux_mask: AuxMaskHead | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self._setup_speed(memory_format, compile, precision)
        self.task = task
        self.optim = optim
        self.epochs = epochs
        self.freeze_epochs = freeze_epochs
        self.budget_seconds = max_minutes * 60.0 if max_minutes else None
        if freeze_epochs > 0 and not can_freeze(model):
            raise ConfigError(
                f"model {type(model).__name__} does not name its head parameters, so it "
                "cannot be frozen; set model.freeze_epochs=0"
            )
        self.loss_fn = task.build_loss(loss, class_weights, optim.label_smoothing)
        self.train_eval: Evaluator = task.train_evaluator()
        self.val_eval: Evaluator = task.evaluator(selecting=True)
        self.history: list[dict[str, float]] = []
        self.mixer = mixer if mixer is not None and mixer.active else None
        if aux_mask is not None and self.mixer is not None:
            raise ConfigError(
                "model.aux_mask does not combine with data.mixup_alpha / data.cutmix_alpha "
                "(the masks are not mixed); turn one of them off"
            )
        self.aux_mask = aux_mask  # a submodule: trained, checkpointed, not in model.safetensors
        self._epoch_lr = math.nan

    def forward(self, x: Tensor) -> Tensor:
        return self._forward(x)

    # -- speed (layout, compile) -------------------------------------------------
    def _setup_speed(self, memory_format: str, compile: bool, precision: str) -> None:
        self.channels_last = use_channels_last(self.model, memory_format, precision)
        set_layout(self.model, self.channels_last)
        # Kept outside the module tree (no "_orig_mod." keys in checkpoints).
        self._compiled = [torch.compile(self.model)] if compile else []

    def _forward(self, x: Tensor) -> Tensor:
        net = self._compiled[0] if self._compiled else self.model
        return net(as_layout(x, self.channels_last))

    def on_fit_end(self) -> None:
        # Saved weights are plain NCHW (safetensors stores contiguous tensors only).
        set_layout(self.model, False)
        if self.aux_mask is not None:  # evaluation and export see the plain classifier
            self.aux_mask.remove()

    def _sync(self, ev: Evaluator) -> None:
        """Under DDP, give every rank the union of what all ranks saw (a whole split)."""
        if self.trainer.world_size > 1 and torch.distributed.is_initialized():
            states: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(states, ev.state())
            ev.load_states(states)

    # -- training --------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        if self.freeze_epochs > 0:
            set_frozen(self.model, self.current_epoch < self.freeze_epochs)
        self.train_eval.reset()
        # Read now: Lightning steps epoch schedulers before on_train_epoch_end.
        self._epoch_lr = self._lr()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        images, target = batch["image"], self.task.target(batch)
        if self.mixer is not None:  # soft targets; train metrics still use the true labels
            images, target = self.mixer(images, target)
        logits = self._forward(images)
        if isinstance(logits, (list, tuple)):  # deep supervision: [full, 1/2, 1/4, ...]
            loss = deep_supervision_loss(self.loss_fn, logits, target)
            logits = logits[0]
        else:
            loss = self.loss_fn(logits, target)
        n = batch["image"].shape[0]
        if self.aux_mask is not None:
            aux = self.aux_mask.loss(batch["mask"])
            self.log("train_aux_loss", aux, on_step=False, on_epoch=True, batch_size=n)
            loss = loss + aux
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        self.train_eval.update(logits, batch)
        return loss

    def on_train_epoch_end(self) -> None:
        # Validation of this epoch has already run when this hook is called.
        self._sync(self.train_eval)
        train = scalar_metrics(self.train_eval.compute())
        logged = {f"train_{k}": v for k, v in train.items() if k not in COUNT_KEYS}
        # Already whole-split and equal on every rank; sync_dist (a mean of equal values)
        # only keeps Lightning from warning about unsynced epoch metrics under DDP.
        self.log_dict(logged, sync_dist=True)
        row: dict[str, float] = {"epoch": float(self.current_epoch), "lr": self._epoch_lr}
        for key, value in sorted(self.trainer.callback_metrics.items()):
            if key.startswith(("train_", "val_")):
                row[key] = float(value)
        self.history.append(row)

    def _lr(self) -> float:
        opt = self.optimizers(use_pl_optimizer=False)
        return float(opt.param_groups[0]["lr"]) if opt is not None else math.nan

    # -- validation ------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self.val_eval.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        logits = self._forward(batch["image"])
        if self.aux_mask is not None:
            self.aux_mask.clear()
        loss = self.loss_fn(logits, self.task.target(batch))
        n = batch["image"].shape[0]
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        self.val_eval.update(logits, batch)

    def on_validation_epoch_end(self) -> None:
        ev = self.val_eval
        # Under DDP every rank saw a shard (a patient's slices may sit on several):
        # gather probabilities / per-image counts keyed by sample and patient first, so
        # every selection metric, per-patient Dice included, is that of the whole split.
        self._sync(ev)
        metrics = scalar_metrics(ev.compute())
        # The monitor is always logged (NaN when undefined): ModelCheckpoint treats NaN
        # as the worst value, whereas a missing key would abort training.
        # val_loss is logged by validation_step: a NaN placeholder here would overwrite it.
        if self.task.monitor != "loss":
            metrics.setdefault(self.task.monitor, math.nan)
        logged = {f"val_{k}": v for k, v in metrics.items() if k not in COUNT_KEYS}
        self.log_dict(logged, sync_dist=True)  # equal on every rank (see above)

    # -- optimisation ----------------------------------------------------------
    def _param_groups(self) -> list[dict[str, Any]]:
        # No weight decay on biases and normalisation weights (1-D tensors).
        decay, no_decay = [], []
        params = list(self.model.parameters())
        if self.aux_mask is not None:
            params += list(self.aux_mask.parameters())
        for p in params:
            (no_decay if p.ndim <= 1 else decay).append(p)
        return [
            {"params": decay, "weight_decay": self.optim.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    def configure_optimizers(self) -> Any:
        o = self.optim
        groups = self._param_groups()
        name = o.optimizer.lower()
        # The fused kernel: one pass over all parameters instead of a Python loop of
        # tensor ops (a unet step 8.3 -> 1.6 ms on one CPU thread; same update rule).
        fused = all(
            p.is_floating_point() and p.device.type in ("cpu", "cuda")
            for g in groups
            for p in g["params"]
        )
        if name == "adam":
            # Adam's weight_decay is L2 in the gradient (kept for reproducing papers).
            opt: torch.optim.Optimizer = torch.optim.Adam(groups, lr=o.lr, fused=fused)
        elif name == "adamw":
            opt = torch.optim.AdamW(groups, lr=o.lr, fused=fused)
        elif name == "sgd":
            opt = torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.momentum > 0)
        else:
            raise ConfigError(f"unknown optim.optimizer {o.optimizer!r}; use adam, adamw or sgd")
        sched = o.scheduler.lower()
        if sched == "none":
            return opt
        if sched in ("cosine", "onecycle"):
            entry = build_scheduler(
                opt,
                sched,
                self.epochs,
                o.warmup_epochs,
                self.budget_seconds,
                total_steps=self._total_steps(),
            )
            return {"optimizer": opt, "lr_scheduler": entry}
        if sched == "plateau":
            # Stepped on the validation monitor, never on test data.
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt, mode=self.task.monitor_mode, factor=0.5, patience=2
            )
            return {
                "optimizer": opt,
                "lr_scheduler": {
                    "scheduler": plateau,
                    "monitor": f"val_{self.task.monitor}",
                    "interval": "epoch",
                },
            }
        raise ConfigError(
            f"unknown optim.scheduler {o.scheduler!r}; use cosine, onecycle, plateau or none"
        )

    def _total_steps(self) -> int | None:
        """Optimizer steps the epoch bound allows (None outside a trainer)."""
        try:
            steps = self.trainer.estimated_stepping_batches
        except (RuntimeError, AttributeError):  # not attached to a trainer (unit tests)
            return None
        return int(steps) if math.isfinite(steps) and steps > 0 else None

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        return (p for p in self.model.parameters() if p.requires_grad)
