"""Runs survive interruption: resume, force-swap, Ctrl+C, SIGKILL (real subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Timer
from safetensors.torch import load_file

from braintumor.config import Config
from braintumor.engine import staging
from braintumor.engine.guards import NonFiniteLoss
from braintumor.engine.train import TrainingInterrupted, resume, train
from braintumor.errors import ConfigError
from braintumor.inference.runs import load_run
from tests.engine.test_engine_training import _Scripted, tiny_config

ROOT = Path(__file__).resolve().parents[2]
# Three epochs, the best one chosen on val loss, a continuous metric (so the saved
# weights come from a resumed epoch), augmentation, early stopping and a time budget.
RESUMABLE = {
    "trainer.epochs": 3,
    "trainer.deterministic": "true",
    "trainer.monitor": "loss",
    "trainer.patience": 5,
    "trainer.max_minutes": 30,
}


def resumable_config(tmp: Path) -> Config:
    return tiny_config(tmp, **RESUMABLE)


def run_files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


class StopInEpoch(L.Callback):
    """Raises ``exc`` after the first batch of epoch ``epoch``."""

    def __init__(self, epoch: int, exc: type[BaseException] = KeyboardInterrupt) -> None:
        self.epoch, self.exc = epoch, exc

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.current_epoch == self.epoch:
            raise self.exc


class TimerAtStart(L.Callback):
    """Reads the training time Lightning's ``Timer`` (``max_time``) counts at fit start."""

    elapsed = -1.0

    def on_train_start(self, trainer: L.Trainer, *args: object) -> None:
        timer = next(c for c in trainer.callbacks if isinstance(c, Timer))
        self.elapsed = timer.time_elapsed("train")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An uninterrupted run of RESUMABLE, and the temp folder holding its data cache."""
    tmp = tmp_path_factory.mktemp("reference")
    ref = train(resumable_config(tmp), tmp / "ref")
    metrics = json.loads((ref / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 3 and metrics["best_epoch"] >= 1  # a resumed epoch
    return ref, tmp


# The child trains with --force over an existing run and blocks in epoch 1, after its
# first batch (so epoch 0 is checkpointed and epoch 1 has half happened).
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import lightning as L
    import torch
    torch.set_num_threads(1)
    from braintumor.engine.train import train
    from tests.engine.test_engine_training import _Scripted, tiny_config
    from tests.engine.test_resume import RESUMABLE

    class Block(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.current_epoch == 1:
                Path(sys.argv[3]).touch()
                time.sleep(600)

    cfg = tiny_config(Path(sys.argv[1]), **RESUMABLE)
    train(cfg, Path(sys.argv[2]), force=True, callbacks=[Block()])
    """
)


def _default_sigint() -> None:
    # A shell that starts pytest in the background ignores SIGINT, and children inherit
    # that; the real Ctrl+C path needs Python's own handler.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_blocked_child(tmp: Path, cache_tmp: Path, out: Path) -> subprocess.Popen[bytes]:
    marker = tmp / "blocked"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(cache_tmp), str(out), str(marker)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_default_sigint,
    )
    deadline = time.monotonic() + 180
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, "child never reached epoch 1"
        time.sleep(0.05)
    return proc


@pytest.mark.slow
def test_sigkill_during_force_retrain_keeps_old_run_then_resume_is_bit_identical(
    tmp_path: Path, reference: tuple[Path, Path]
) -> None:
    ref, cache_tmp = reference
    out = tmp_path / "run"
    old_cfg = tiny_config(cache_tmp, seed=7)  # a different, finished run to be replaced
    train(old_cfg, out)
    before = run_files(out)

    proc = start_blocked_child(tmp_path, cache_tmp, out)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    assert run_files(out) == before  # the old run is untouched ...
    load_run(out)  # ... and loadable
    partial = staging.partial_dir(out)
    assert (partial / "logs" / "checkpoints" / "last.ckpt").is_file()
    resume(out)
    assert same_weights(ref, out)
    assert (ref / "history.csv").read_text() == (out / "history.csv").read_text()
    assert not partial.exists()
    assert not (out / "logs" / "checkpoints").exists()
    # One TensorBoard/CSV log per run folder: nothing of the old run is left.
    assert "seed: 7" not in (out / "config.yaml").read_text()


def test_ctrl_c_saves_and_resume_is_bit_identical(
    tmp_path: Path, reference: tuple[Path, Path]
) -> None:
    ref, cache_tmp = reference
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match=f"braintumor train --resume {out}"):
        train(resumable_config(cache_tmp), out, callbacks=[StopInEpoch(1)])
    assert not out.exists()  # nothing is written to the run folder before the run is done
    budget = TimerAtStart()
    resume(out, callbacks=[budget])
    assert budget.elapsed > 0  # trainer.max_minutes counts the first session's time
    assert same_weights(ref, out)
    assert (ref / "history.csv").read_text() == (out / "history.csv").read_text()
    with pytest.raises(ConfigError, match="complete, there is nothing to resume"):
        resume(out)


@pytest.mark.slow
def test_real_sigint_in_the_cli_prints_the_resume_command(tmp_path: Path) -> None:
    """``braintumor train``, Ctrl+C after the first epoch: exit 130, one line, the command."""
    out = tmp_path / "run"
    cfg = tiny_config(tmp_path, **{"trainer.epochs": 500})  # stopped long before the end
    sets = [f"--set=data.options={cfg.data.options}".replace("'", "")]
    sets += [f"--set=data.cache_dir={cfg.data.cache_dir}", "--set=data.image_size=32"]
    sets += ["--set=trainer.progress=false", "--set=trainer.epochs=500", "--accelerator=cpu"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "braintumor", "train", "--data", "synthetic", "--out", str(out)]
        + sets,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_default_sigint,
    )
    ckpt = staging.partial_dir(out) / "logs" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 180
    while not ckpt.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no epoch checkpoint within 3 minutes"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    text = err.decode()
    assert "Traceback" not in text
    assert "interrupted: training interrupted" in text
    assert f"continue with: braintumor train --resume {out}" in text
    assert not out.exists() and ckpt.is_file()
    with pytest.raises(ConfigError, match="unfinished run"):
        train(tiny_config(tmp_path), out)
    train(tiny_config(tmp_path), out, force=True)  # discards it and starts over
    assert not staging.partial_dir(out).exists()
    logs = sorted((out / "logs").rglob("events.*"))
    assert len(logs) <= 1  # the interrupted run's events did not follow into the new run


class StopInSecondFit(L.Callback):
    """Ctrl+C in epoch 1 of the second fold of a cross-validation."""

    fits = 0

    def on_fit_start(self, trainer: L.Trainer, *args: object) -> None:
        self.fits += 1

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if self.fits == 2 and trainer.current_epoch == 1:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_cross_validation_resumes_the_unfinished_fold(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, **{**RESUMABLE, "folds": 2, "trainer.epochs": 2})
    ref = train(cfg, tmp_path / "ref")
    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "cv", callbacks=[StopInSecondFit()])
    out = resume(tmp_path / "cv")
    for fold in ("fold_0", "fold_1"):
        assert same_weights(ref / fold, out / fold)
    assert (out / "cv_metrics.json").is_file()


class ScriptedMonitor(L.Callback):
    """Val balanced accuracy 0.2, 0.9, 0.1, ...: patience 1 stops after the third epoch."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        pl_module.val_eval = _Scripted(pl_module.val_eval, [0.2, 0.9, 0.1, 0.95, 0.95])


class InterruptAfterTraining(L.Callback):
    def on_train_end(self, trainer: L.Trainer, *args: object) -> None:
        raise KeyboardInterrupt


def test_resume_after_early_stopping_does_not_train_on(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, **{"trainer.epochs": 5, "trainer.patience": 1})
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match="3 epoch"):
        train(cfg, out, callbacks=[ScriptedMonitor(), InterruptAfterTraining()])
    resume(out, callbacks=[ScriptedMonitor()])
    assert len((out / "history.csv").read_text().splitlines()) == 1 + 3
    assert json.loads((out / "metrics.json").read_text())["best_epoch"] == 1


def test_failure_before_first_epoch_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(ValueError):
        train(tiny_config(tmp_path), out, callbacks=[StopInEpoch(0, ValueError)])
    assert not out.exists() and not staging.partial_dir(out).exists()
    with pytest.raises(ConfigError, match="no unfinished run"):
        resume(out)


def test_diverging_loss_stops_with_one_line_and_saves_nothing(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, **{"optim.lr": 1e38, "optim.optimizer": "sgd"})
    with pytest.raises(NonFiniteLoss, match=r"epoch 1 of 1.*lower optim\.lr"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    assert not staging.partial_dir(tmp_path / "run").exists()


def test_swap_cut_short_is_finished_by_recover(tmp_path: Path) -> None:
    out, work = tmp_path / "run", staging.partial_dir(tmp_path / "run")
    out.mkdir()
    (out / "model.safetensors").write_text("old")
    (out / "confusion_matrix.png").write_text("old only")
    (out / "notes.txt").write_text("mine")
    work.mkdir()
    (work / "model.safetensors").write_text("new")
    (work / "model.json").write_text("new card")
    # Simulate a kill after the manifest and the first renames.
    (work / ".swap.json").write_text('{"entries": ["model.safetensors", "model.json"]}')
    (work / ".replaced").mkdir()
    (out / "model.safetensors").rename(work / ".replaced" / "model.safetensors")
    (work / "model.safetensors").rename(out / "model.safetensors")
    staging.recover(out)
    assert (out / "model.safetensors").read_text() == "new"
    assert (out / "model.json").read_text() == "new card"
    assert not (out / "confusion_matrix.png").exists()  # the old run's file is gone
    assert (out / "notes.txt").read_text() == "mine"  # not a run file: kept
    assert not work.exists()
