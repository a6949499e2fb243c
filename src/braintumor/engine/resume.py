"""Resumable training: an atomic checkpoint every epoch, with what Lightning leaves out.

Lightning's ``trainer.fit(ckpt_path=...)`` restores the weights, the optimiser, the LR
schedulers, the loop counters and the state of every callback: the best-epoch
``ModelCheckpoint``, ``EarlyStopping`` (best score, epochs waited) and the ``Timer``
behind ``trainer.max_time`` (its elapsed training time is carried over, so the budget
counts the time already spent). It does not save the random number generators, nor
anything our module keeps outside ``state_dict`` (the per-epoch history).
:class:`EpochCheckpoint` adds those:

- torch (CPU and every CUDA device), NumPy and Python RNG states, and the states of the
  training set's MONAI augmentation pipeline (``Augment.state_dict``);
- ``history`` (the rows of ``history.csv``) and the training seconds spent so far.

- whether that epoch ended the run (early stopping or the time budget).

The checkpoint is written at the end of every epoch, where Lightning's own
``ModelCheckpoint`` writes (after early stopping and the best checkpoint have seen
the epoch), to a temporary name then renamed, so a kill never leaves half a file.
The RNG states saved there are restored when the checkpoint is loaded, before the
resumed run draws its first shuffle, so a resumed single-process run retraces the uninterrupted one
exactly (bit-identical on CPU with ``trainer.deterministic``). With DataLoader
workers (persistent, seeded once per run) or DDP (rank 0's states are saved) a resumed
run is equivalent but not bit-identical.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint

from braintumor.inference import runs

LAST_CHECKPOINT = "last.ckpt"
_KEY = "braintumor_resume"


def checkpoint_dir(work: Path) -> Path:
    """Where a run keeps its checkpoints while it trains."""
    return work / runs.LOGS_DIR / "checkpoints"


def last_checkpoint(work: Path) -> Path:
    return checkpoint_dir(work) / LAST_CHECKPOINT


def rng_state(augment: Any = None) -> dict[str, Any]:
    """Every random stream training draws from, as tensors and numbers only.

    Plain types keep the checkpoint readable with ``torch.load(weights_only=True)``.
    """
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": [torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": [version, list(py_state), py_gauss],
        "augment": augment.state_dict() if augment is not None else None,
    }


def set_rng_state(state: dict[str, Any], augment: Any = None) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, py_state, py_gauss = state["python"]
    random.setstate((version, tuple(py_state), py_gauss))
    if augment is not None and state.get("augment") is not None:
        augment.load_state_dict(state["augment"])


class EpochCheckpoint(Checkpoint):
    """Writes ``last.ckpt`` atomically after every epoch; restores what Lightning does not.

    A ``Checkpoint`` subclass, so Lightning calls it at the end of each epoch after the
    module, early stopping and the best-epoch checkpoint (the place and order of
    Lightning's own ``ModelCheckpoint``, the one its resume logic expects).

    Args:
        path: the checkpoint file (``RUN/logs/checkpoints/last.ckpt``).
        augment: the training set's augmentation (its ``state_dict`` is saved), or None.
    """

    def __init__(self, path: Path, augment: Any = None) -> None:
        self.path = Path(path)
        self.augment = augment if hasattr(augment, "state_dict") else None
        self._seconds_before = 0.0  # training time of earlier sessions of this run
        self._started: float | None = None
        self._stop = False

    @property
    def train_seconds(self) -> float:
        """Training time of this run so far, over every session (resumes included)."""
        now = time.monotonic() - self._started if self._started is not None else 0.0
        return self._seconds_before + now

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._started = time.monotonic()
        if self._stop:
            # The saved epoch ended the run (early stopping, time budget): Lightning does
            # not save that decision, so without this a resumed run would train on.
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)

    def save(self, trainer: L.Trainer) -> None:
        """Write the checkpoint to a temporary name, then rename it into place."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        if trainer.is_global_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # Full state (optimiser, loops, callbacks); saying so silences Lightning's notice.
        trainer.save_checkpoint(tmp, weights_only=False)  # every rank calls it; rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, self.path)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[_KEY] = {
            "rng": rng_state(self.augment),
            "history": [dict(row) for row in getattr(pl_module, "history", [])],
            "train_seconds": self.train_seconds,
            "stop": bool(trainer.should_stop),
        }

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        state = checkpoint.get(_KEY)
        if state is None:
            return
        # Restored now, before Lightning builds the first iterator of the resumed run
        # (its shuffle and the prefetched first batch draw from these streams).
        set_rng_state(state["rng"], self.augment)
        self._seconds_before = float(state["train_seconds"])
        self._stop = bool(state.get("stop", False))
        if hasattr(pl_module, "history"):
            pl_module.history = [dict(row) for row in state["history"]]


def read_progress(path: Path) -> dict[str, Any]:
    """``{"epochs", "global_step"}`` of a resume checkpoint: epochs complete, steps taken."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    # Written at the end of an epoch, whose (0-based) index Lightning stores as "epoch".
    return {
        "epochs": int(ckpt.get("epoch", -1)) + 1,
        "global_step": int(ckpt.get("global_step", 0)),
    }


__all__ = ["EpochCheckpoint", "LAST_CHECKPOINT", "checkpoint_dir", "last_checkpoint"]
