"""``train(cfg, out)``: fit, select the best epoch on validation, test once, write the run.

The same config runs on a CPU, one GPU or many (DDP via ``torchrun`` or SLURM,
which Lightning detects from the environment); only global rank 0 writes files.
The test split never influences training: the checkpoint, early stopping and the
plateau scheduler all watch the validation monitor, and the test split is
evaluated once, after training, with the best validation weights.
"""

from __future__ import annotations

import copy
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from braintumor.config import Config, save_config
from braintumor.data import DatasetFormat, Record
from braintumor.engine.checks import check_config, probe_model
from braintumor.engine.data import (
    build_data,
    class_weights,
)
from braintumor.engine.evaluate import evaluate_model, pick_device
from braintumor.engine.module import BrainTumorModule
from braintumor.engine.schedule import schedule_callbacks
from braintumor.engine.tasks import Task, create_task
from braintumor.engine.trainer import build_trainer, checkpoint_state
from braintumor.inference import runs


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
        force: replace a run folder that already holds a trained model.
        callbacks: extra Lightning callbacks (e.g. for tests or custom logging).

    Returns:
        The run folder.
    """
    cfg = copy.deepcopy(cfg)
    check_config(cfg)
    # Refuse a bad --out now, but replace an old run (--force) only once the data and
    # the model have been checked: a run that fails early leaves the old one intact.
    out = runs.check_run_dir(out, force)

    def make_room() -> None:
        if rank_zero_only.rank == 0:
            runs.prepare_run_dir(out, force)

    if cfg.folds > 1:
        from braintumor.engine.crossval import cross_validate

        return cross_validate(cfg, out, callbacks=callbacks, before_write=make_room)
    fit_run(cfg, out, callbacks=callbacks, before_write=make_room)
    return out


def _load_best(model: torch.nn.Module, ckpt_path: str) -> dict[str, Any]:
    """Copy the best checkpoint's weights into ``model``; returns the checkpoint metadata."""
    state, meta = checkpoint_state(ckpt_path)
    weights = {k[len("model.") :]: v.clone() for k, v in state.items() if k.startswith("model.")}
    model.load_state_dict(weights, strict=True)
    return meta


def fit_run(
    cfg: Config,
    out: Path,
    *,
    fmt: DatasetFormat | None = None,
    splits: dict[str, list[Record]] | None = None,
    callbacks: Sequence[Callback] = (),
    before_write: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Train one model on one split assignment and write its run folder.

    Args:
        before_write: called once everything has been checked (data decoded, model
            probed, trainer built) and just before the first file is written; training
            uses it to clear the run folder that ``--force`` replaces.

    Returns:
        The test metrics (empty on ranks other than 0).
    """
    from braintumor.data.splits import save_splits
    from braintumor.models.registry import count_params, create_model

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    data = build_data(cfg, splits=splits, fmt=fmt)
    task: Task = create_task(cfg.task, data.names, cfg.threshold, cfg.trainer.monitor)
    # The resolved config: what was actually used, so the run can be reproduced.
    cfg.data.channels, cfg.data.crop = data.channels, data.crop
    cfg.loss = cfg.loss or task.default_loss
    probe_model(cfg, data.in_channels, task.num_outputs)  # a size the model cannot take: now
    model = create_model(
        cfg.model.name,
        in_channels=data.in_channels,
        num_classes=task.num_outputs,
        **cfg.model.kwargs,
    )
    if cfg.model.pretrained:
        from braintumor.models.pretrained import load_pretrained

        load_pretrained(model, cfg.model.pretrained)
    weights = None
    if cfg.optim.class_weights and cfg.task == "classification":
        weights = class_weights(data.splits["train"], task.num_outputs)
    module = BrainTumorModule(
        model,
        task,
        cfg.optim,
        cfg.trainer.epochs,
        loss=cfg.loss,
        class_weights=weights,
        freeze_epochs=cfg.model.freeze_epochs,
        max_minutes=cfg.trainer.max_minutes,
    )
    train_loader = data.loader("train", train=True)
    val_loader = data.loader("val")
    test_loader = data.loader("test")  # built now: an empty test split fails before training
    ckpt = ModelCheckpoint(
        dirpath=out / runs.LOGS_DIR / "checkpoints",
        filename="best",
        monitor=f"val_{task.monitor}",
        mode=task.monitor_mode,
        save_top_k=1,
        # With EMA, Lightning puts the averaged weights into a full checkpoint only.
        save_weights_only=cfg.trainer.ema_decay <= 0,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    extra: list[Callback] = [ckpt, *schedule_callbacks(cfg), *callbacks]
    if cfg.trainer.patience > 0:
        extra.append(
            EarlyStopping(
                monitor=f"val_{task.monitor}", mode=task.monitor_mode, patience=cfg.trainer.patience
            )
        )
    trainer = build_trainer(
        cfg, out, extra, freeze=cfg.model.freeze_epochs > 0, batches_per_epoch=len(train_loader)
    )
    if before_write is not None:
        before_write()
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / runs.CONFIG_FILE)
        save_splits(data.splits, out / runs.SPLITS_FILE)
    start = time.perf_counter()
    trainer.fit(module, train_loader, val_loader)
    seconds = time.perf_counter() - start
    if not trainer.is_global_zero:
        return {}

    selected: dict[str, Any] = {
        "monitor": f"val_{task.monitor}",
        "best_epoch": None,
        "best_val": None,
        "selected": "last",
    }
    if ckpt.best_model_path:
        meta = _load_best(model, ckpt.best_model_path)
        best = ckpt.best_model_score
        selected.update(
            best_epoch=meta.get("epoch"),
            selected="best",
            best_val=float(best) if best is not None else None,
        )
        shutil.rmtree(Path(ckpt.best_model_path).parent, ignore_errors=True)
    plain_loss = task.build_loss(cfg.loss, None, 0.0)  # comparable across runs
    metrics = evaluate_model(
        model, task, test_loader, plain_loss, device=pick_device(cfg.trainer.accelerator)
    )
    metrics.update(
        split="test",
        model=cfg.model.name,
        params=count_params(model),
        train_seconds=round(seconds, 2),
        epochs_trained=trainer.current_epoch,
        **selected,
    )
    _write_outputs(cfg, out, model, task, data, module.history, metrics)
    return metrics


def _write_outputs(
    cfg: Config,
    out: Path,
    model: torch.nn.Module,
    task: Task,
    data: Any,
    history: list[dict[str, float]],
    metrics: dict[str, Any],
) -> None:
    from braintumor.reports.plots import plot_confusion_matrix, plot_learning_curves

    is_cls = cfg.task == "classification"
    card = runs.make_card(
        cfg,
        in_channels=data.in_channels,
        num_classes=task.num_outputs,
        classes=list(data.fmt.classes),
        mask_channels=list(data.fmt.mask_channels),
        crop=data.crop,
        params=metrics["params"],
        metrics={k: metrics.get(k) for k in task.headline},
    )
    model.cpu()
    runs.save_run_model(out, model, card)
    runs.write_json(out / runs.METRICS_FILE, metrics)
    runs.write_history(out / runs.HISTORY_FILE, history)
    names = [task.monitor] + [m for m in task.headline if m != task.monitor][:2]
    plot_learning_curves(
        history, out / runs.CURVES_FILE, metrics=names, title=f"{cfg.model.name} on {cfg.data.spec}"
    )
    if is_cls:
        plot_confusion_matrix(
            metrics["confusion_matrix"], data.names, out / runs.CONFUSION_FILE, title="test split"
        )


__all__ = ["check_config", "fit_run", "train"]
