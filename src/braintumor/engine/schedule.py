"""Learning-rate schedules, including one that spans a wall-clock budget.

With ``trainer.max_minutes`` set, the number of epochs a run gets depends on the
machine (a quiet CPU, a busy one, a GPU). An epoch-based cosine would then either
stop half-way down the curve (budget shorter than ``trainer.epochs``) or reach zero
long before the budget is spent. :class:`TimeBudgetLR` instead reads the elapsed
training time: its LR factor is a function of ``elapsed / budget``, stepped every
batch, so the run is annealed exactly when the time is up, however many epochs
that was. :class:`ScheduleEnd` stops the trainer at that moment. When the epochs
run out first (a fast machine), the fraction of the steps done drives the curve
instead (progress is the larger of the two), so that run also ends annealed.

Weight averaging (``trainer.ema_decay``) uses Lightning's EMA callback: validation,
and so checkpoint selection, sees the averaged weights, and the checkpoint that is
kept holds them.

The elapsed time is kept in the scheduler's ``state_dict`` (not only the clock), so
a resumed run continues the curve where it stopped and the time spent while the
run was not running is not counted.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging

from braintumor.config import Config

Clock = Callable[[], float]


def now() -> float:
    """The schedule's clock (a module function, so a test can replace it)."""
    return time.monotonic()


SHAPES = ("cosine", "onecycle")


def cosine_with_warmup(epochs: int, warmup: int) -> Callable[[int], float]:
    """Per-epoch LR factor: linear warm-up to 1, then half a cosine towards 0."""
    warmup = min(warmup, max(0, epochs - 1))  # a 1-epoch run trains at the full rate

    def factor(epoch: int) -> float:
        if epoch < warmup:
            return (epoch + 1) / (warmup + 1)
        progress = (epoch - warmup) / max(1, epochs - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def budget_factor(progress: float, shape: str = "cosine", warmup: float = 0.03) -> float:
    """LR factor at ``progress`` (0 = start, 1 = budget spent) of a time-budget run.

    ``cosine``: linear warm-up over the first ``warmup`` of the budget, then half a
    cosine to 0. ``onecycle``: warm-up over 30 % of the budget from 1/25 of the peak,
    then a cosine to 0 (Smith's one-cycle, without the momentum cycle).
    """
    p = min(max(progress, 0.0), 1.0)
    # The cosine's warm-up starts near 0 (a first step at LR 0 would be wasted).
    start = 1.0 / 25.0 if shape == "onecycle" else 1e-3
    if shape == "onecycle":
        warmup = 0.3
    if warmup > 0 and p < warmup:
        return start + (1.0 - start) * (p / warmup)
    rest = (p - warmup) / max(1e-9, 1.0 - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * rest))


class TimeBudgetLR(torch.optim.lr_scheduler.LRScheduler):
    """LR = base LR x :func:`budget_factor` (elapsed seconds / ``budget_seconds``).

    Step it every batch (``interval: "step"``). ``clock`` defaults to :func:`now`.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        budget_seconds: float,
        shape: str = "cosine",
        warmup: float = 0.03,
        clock: Clock | None = None,
        total_steps: int | None = None,
    ) -> None:
        if budget_seconds <= 0:
            raise ValueError(f"budget_seconds must be > 0, got {budget_seconds}")
        if shape not in SHAPES:
            raise ValueError(f"unknown budget schedule shape {shape!r}; use {', '.join(SHAPES)}")
        self.budget_seconds = float(budget_seconds)
        self.shape, self.warmup = shape, float(warmup)
        self.clock = clock
        self.total_steps = total_steps  # the epoch bound in steps (None: time only)
        self.elapsed = 0.0
        self._last: float | None = None
        super().__init__(optimizer)

    @property
    def progress(self) -> float:
        """Fraction of the budget spent, in time or in steps, whichever is larger."""
        steps = self.last_epoch / self.total_steps if self.total_steps else 0.0
        return max(self.elapsed / self.budget_seconds, steps)

    def _tick(self) -> None:
        t = (self.clock or now)()
        if self._last is not None:
            self.elapsed += max(0.0, t - self._last)
        self._last = t

    def get_lr(self) -> list[float]:  # type: ignore[override]
        self._tick()
        f = budget_factor(self.progress, self.shape, self.warmup)
        return [base * f for base in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.pop("clock", None)
        state["_last"] = None  # time between saving and resuming is not training time
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "clock"})
        self._last = None


class ScheduleEnd(Callback):
    """Stop training when the time-budget schedule has reached its end (LR ~ 0)."""

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        for config in trainer.lr_scheduler_configs:
            sched = config.scheduler
            if isinstance(sched, TimeBudgetLR) and sched.progress >= 1.0:
                trainer.should_stop = True


def build_scheduler(
    opt: torch.optim.Optimizer,
    name: str,
    epochs: int,
    warmup_epochs: int,
    budget_seconds: float | None,
    clock: Clock | None = None,
    total_steps: int | None = None,
) -> dict[str, Any] | None:
    """Lightning's ``lr_scheduler`` entry for ``cosine``/``onecycle``; None otherwise.

    With a budget, the schedule spans the budget (stepped per batch); without one,
    ``cosine`` is the per-epoch warm-up + cosine over ``epochs``.
    """
    if budget_seconds and name in SHAPES:
        # optim.warmup_epochs as a share of the epoch bound (at most 30 % of the run).
        warmup = min(0.3, warmup_epochs / max(1, epochs))
        sched = TimeBudgetLR(
            opt, budget_seconds, name, warmup=warmup, clock=clock, total_steps=total_steps
        )
        return {"scheduler": sched, "interval": "step"}
    if name == "onecycle":  # no budget: the same curve over the epochs
        lam = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda e: budget_factor(e / max(1, epochs), "onecycle")
        )
        return {"scheduler": lam, "interval": "epoch"}
    if name == "cosine":
        lam = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup(epochs, warmup_epochs))
        return {"scheduler": lam, "interval": "epoch"}
    return None


def schedule_callbacks(cfg: Config) -> list[Callback]:
    """The callbacks a config's schedule needs: the budget stop and the EMA."""
    out: list[Callback] = []
    if cfg.trainer.max_minutes and cfg.optim.scheduler.lower() in SHAPES:
        out.append(ScheduleEnd())
    if cfg.trainer.ema_decay > 0:
        out.append(EMAWeightAveraging(decay=cfg.trainer.ema_decay))
    return out
