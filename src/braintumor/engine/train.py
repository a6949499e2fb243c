"""``train(cfg, out)``: fit, select the best epoch on validation, test once, write the run.

The same config runs on a CPU, one GPU or many (DDP via ``torchrun`` or SLURM,
which Lightning detects from the environment); only global rank 0 writes files.
The test split never influences training: the checkpoint, early stopping and the
plateau scheduler all watch the validation monitor, and the test split is
evaluated once, after training, with the best validation weights.

A run is built in a partial folder beside ``out`` and swapped in only when complete
(``engine/staging.py``), with a resume checkpoint every epoch (``engine/resume.py``):
``resume(out)`` continues a killed or interrupted run, and a killed ``--force``
retrain leaves the old run as it was.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import Callback

from braintumor.config import Config, load_config, save_config
from braintumor.engine import staging
from braintumor.engine.checks import check_config
from braintumor.engine.crossval import cross_validate
from braintumor.engine.fit import fit_run
from braintumor.engine.guards import NonFiniteLoss
from braintumor.engine.resume import last_checkpoint, read_progress
from braintumor.errors import BrainTumorError, ConfigError
from braintumor.inference import runs


class TrainingInterrupted(BrainTumorError):
    """Ctrl+C during training: the last complete epoch is saved and can be resumed."""

    exit_code = 130
    prefix = "interrupted"


def train(
    cfg: Config,
    out: str | Path,
    *,
    force: bool = False,
    callbacks: Sequence[Callback] = (),
) -> Path:
    """Train a model as configured and write the run folder ``out``.

    Args:
        cfg: the run configuration (not modified).
        out: run folder; with ``cfg.folds > 1`` it receives ``fold_<i>/`` run folders
            and ``cv_metrics.json``.
        force: replace a run folder that already holds a trained model (or discard an
            unfinished run of ``out`` that could be resumed).
        callbacks: extra Lightning callbacks (e.g. for tests or custom logging).

    Returns:
        The run folder.
    """
    cfg = copy.deepcopy(cfg)
    check_config(cfg)
    out = Path(out).expanduser()
    staging.recover(out)
    # Refuse a bad --out now; the old run is replaced only once the new one is complete.
    out = runs.check_run_dir(out, force)
    work = staging.partial_dir(out)
    if work.parent.is_dir() and not os.access(work.parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot build the run beside {out}: {work.parent} is not writable (a run is "
            "built there and moved in when complete); choose another --out"
        )
    if resumable(work) and not force:
        raise ConfigError(
            f"{out} has an unfinished run ({_progress(work)}, in {work}); continue it with "
            f"'braintumor train --resume {out}', or pass --force to discard it and start over"
        )
    made: list[bool] = []

    def make_room() -> None:
        if rank_zero_only.rank == 0:
            staging.discard(work)
            work.mkdir(parents=True)
            if cfg.folds > 1:  # the folds' own configs say folds=0; --resume needs this one
                save_config(cfg, work / runs.CONFIG_FILE)
        made.append(True)

    return _run(cfg, out, work, callbacks, make_room, made, resume=False)


def resume(out: str | Path, *, callbacks: Sequence[Callback] = ()) -> Path:
    """Continue the unfinished run of ``out`` from its last epoch checkpoint.

    The run continues with the config it was started with (its saved ``config.yaml``):
    weights, optimiser, scheduler, early stopping, random streams and the training
    time already spent are restored, so the result is the one an uninterrupted run
    would have given.
    """
    out = Path(out).expanduser()
    staging.recover(out)
    work = staging.partial_dir(out)
    if not resumable(work):
        if runs.holds_model(out):
            raise ConfigError(
                f"run {out} is complete, there is nothing to resume; train a new one with "
                "--force to replace it"
            )
        raise ConfigError(
            f"{out} has no unfinished run to resume (no epoch checkpoint in {work}: the run "
            f"never finished an epoch, or never started); train it again with --out {out}"
        )
    cfg = load_config(work / runs.CONFIG_FILE)
    check_config(cfg)
    return _run(cfg, out, work, callbacks, None, [True], resume=True)


def resumable(work: Path) -> bool:
    """True when ``work`` (a partial run folder) holds an epoch checkpoint or a finished fold."""
    if not work.is_dir():
        return False
    if last_checkpoint(work).is_file():
        return True
    folds = [p for p in work.glob("fold_*") if p.is_dir()]
    return any(last_checkpoint(p).is_file() or runs.holds_model(p) for p in folds)


def _progress(work: Path) -> str:
    ckpt = last_checkpoint(work)
    if ckpt.is_file():
        try:
            return f"{read_progress(ckpt)['epochs']} epoch(s) saved"
        except Exception:  # noqa: BLE001 - only for the message
            return "an epoch checkpoint"
    return "finished folds"


def _run(
    cfg: Config,
    out: Path,
    work: Path,
    callbacks: Sequence[Callback],
    before_write: Callable[[], None] | None,
    made: list[bool],
    *,
    resume: bool,
) -> Path:
    try:
        if cfg.folds > 1:
            cross_validate(cfg, work, callbacks=callbacks, before_write=before_write, resume=resume)
        else:
            fit_run(cfg, work, callbacks=callbacks, before_write=before_write, resume=resume)
    except NonFiniteLoss:
        if rank_zero_only.rank == 0:
            staging.discard(work)  # resuming would diverge again: nothing worth keeping
        raise
    except KeyboardInterrupt:
        if resumable(work):
            raise TrainingInterrupted(
                f"training interrupted (Ctrl+C or SIGTERM); {_progress(work)} in {work}; "
                f"continue with: braintumor train --resume {out}"
            ) from None
        if made and rank_zero_only.rank == 0:
            staging.discard(work)
        raise
    except BaseException:
        if made and not resumable(work) and rank_zero_only.rank == 0:
            staging.discard(work)  # a run that failed before its first epoch ended
        raise
    if rank_zero_only.rank == 0:
        staging.swap_in(work, out)
    return out


__all__ = ["TrainingInterrupted", "check_config", "fit_run", "resume", "resumable", "train"]
