"""The time-budget LR schedule and weight averaging."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from safetensors.torch import load_file

from braintumor.engine import schedule
from braintumor.engine.schedule import TimeBudgetLR, budget_factor
from braintumor.engine.train import train
from tests.engine.test_engine_training import tiny_config


class FakeClock:
    """Advances ``step`` seconds every time it is read."""

    def __init__(self, step: float = 1.0) -> None:
        self.t, self.step = 0.0, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


def _opt() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def test_budget_factor_warms_up_then_anneals_to_zero() -> None:
    assert budget_factor(0.0) < 0.01
    assert budget_factor(0.03) == pytest.approx(1.0)
    assert budget_factor(0.5) < budget_factor(0.2) < 1.0
    assert budget_factor(1.0) == pytest.approx(0.0, abs=1e-12)
    assert budget_factor(3.0) == budget_factor(1.0)  # past the budget: stays annealed
    assert budget_factor(0.0, "onecycle") == pytest.approx(1 / 25)
    assert budget_factor(0.3, "onecycle") == pytest.approx(1.0)


def test_lr_follows_elapsed_time_not_steps() -> None:
    opt = _opt()
    sched = TimeBudgetLR(opt, budget_seconds=10, clock=FakeClock(step=5.0))
    sched.step()  # 5 s of 10: half-way
    assert sched.progress == pytest.approx(0.5)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * budget_factor(0.5))
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_state_dict_resumes_the_elapsed_time() -> None:
    sched = TimeBudgetLR(_opt(), budget_seconds=100, clock=FakeClock(step=10.0))
    for _ in range(3):
        sched.step()
    state = sched.state_dict()
    assert state["elapsed"] == pytest.approx(30.0) and "clock" not in state
    # A resumed run, started much later on its clock: the gap is not training time.
    clock = FakeClock(step=10.0)
    clock.t = 10_000.0
    resumed = TimeBudgetLR(_opt(), budget_seconds=100, clock=clock)
    resumed.load_state_dict(state)
    resumed.step()  # first tick after resuming only restarts the clock
    assert resumed.elapsed == pytest.approx(30.0)
    resumed.step()
    assert resumed.elapsed == pytest.approx(40.0)


class LastLR(L.Callback):
    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.lr = trainer.optimizers[0].param_groups[0]["lr"]
        self.scheduler = trainer.lr_scheduler_configs[0].scheduler
        self.interval = trainer.lr_scheduler_configs[0].interval
        self.epochs = trainer.current_epoch


def test_budget_run_ends_at_the_schedules_last_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One fake second per schedule step: a 0.5-minute budget is 30 steps, far fewer
    # than 40 epochs, so the schedule, not the epoch count, must end the run.
    monkeypatch.setattr(schedule, "now", FakeClock(step=1.0))
    cfg = tiny_config(tmp_path, **{"trainer.max_minutes": 0.5, "trainer.epochs": 40})
    rec = LastLR()
    run = train(cfg, tmp_path / "run", callbacks=[rec])
    assert rec.interval == "step" and isinstance(rec.scheduler, TimeBudgetLR)
    assert 1.0 <= rec.scheduler.progress < 1.0 + 2 / 30  # stopped at the last step
    assert rec.lr == pytest.approx(0.0, abs=1e-9)
    assert rec.epochs < 40
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_trained"] < 40


def test_ema_validates_and_keeps_the_averaged_weights(tmp_path: Path) -> None:
    class Snap(L.Callback):
        def __init__(self) -> None:
            self.raw: list[dict[str, torch.Tensor]] = []
            self.val: list[dict[str, torch.Tensor]] = []

        def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
            self.last_raw: dict[str, torch.Tensor] = {}

        def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any) -> None:
            self.last_raw = {k: v.clone() for k, v in pl_module.model.state_dict().items()}

        def on_validation_batch_end(self, trainer: L.Trainer, pl_module: Any, *a: Any) -> None:
            if len(self.val) == trainer.current_epoch:  # the first batch of this validation
                self.raw.append(self.last_raw)
                self.val.append({k: v.clone() for k, v in pl_module.model.state_dict().items()})

    snap = Snap()
    cfg = tiny_config(tmp_path, **{"trainer.ema_decay": 0.5, "trainer.epochs": 3})
    run = train(cfg, tmp_path / "run", callbacks=[snap])
    best = json.loads((run / "metrics.json").read_text())["best_epoch"]
    saved = load_file(str(run / "model.safetensors"))
    key = next(k for k in saved if k.endswith("weight") and saved[k].ndim > 1)
    # Validation saw averaged weights (not the raw ones), and the run kept those.
    assert not torch.allclose(snap.val[-1][key], snap.raw[-1][key])
    assert torch.allclose(saved[key], snap.val[best][key])


def test_when_the_epochs_run_out_first_the_run_still_ends_annealed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fast machine: 3 epochs take a few fake milliseconds of a 30-minute budget.
    monkeypatch.setattr(schedule, "now", FakeClock(step=0.001))
    cfg = tiny_config(tmp_path, **{"trainer.max_minutes": 30, "trainer.epochs": 3})
    rec = LastLR()
    train(cfg, tmp_path / "run", callbacks=[rec])
    assert rec.epochs == 3
    assert rec.scheduler.progress == pytest.approx(1.0)  # driven by the steps
    assert rec.lr == pytest.approx(0.0, abs=1e-9)
