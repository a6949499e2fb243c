"""``fit_run``: one model, one split assignment, one run folder (the engine's core).

Seeds, builds the data, the model and the ``Trainer``, fits (from the folder's epoch
checkpoint when resuming), reloads the best validation epoch, tests once and writes
the run files. ``train`` (``engine/train.py``) decides which folder that is.
"""

from __future__ import annotations

import shutil
import signal
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from braintumor.config import Config, save_config
from braintumor.data import DatasetFormat, Record
from braintumor.data.mixing import BatchMixer
from braintumor.engine.aux_mask import AuxMaskHead
from braintumor.engine.checks import build_model, check_memory, probe_model
from braintumor.engine.data import build_data, class_weights, open_format, subsample
from braintumor.engine.evaluate import evaluate_model, pick_device
from braintumor.engine.guards import FiniteLossGuard
from braintumor.engine.levers import SIZES, Levers, select_on_val
from braintumor.engine.module import BrainTumorModule
from braintumor.engine.resume import EpochCheckpoint, checkpoint_dir, last_checkpoint, read_progress
from braintumor.engine.schedule import schedule_callbacks
from braintumor.engine.tasks import Task, create_task
from braintumor.engine.trainer import build_trainer, checkpoint_state
from braintumor.errors import ConfigError
from braintumor.inference import runs


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
    resume: bool = False,
) -> dict[str, Any]:
    """Train one model on one split assignment and write its run folder.

    Args:
        out: the folder the run is built in (``train`` passes the partial folder).
        before_write: called once everything has been checked (data decoded, model
            probed, trainer built) and just before the first file is written; training
            uses it to clear the partial folder of a run that ``--force`` discards.
        resume: continue from ``out``'s epoch checkpoint, on the splits it saved.

    Returns:
        The test metrics (empty on ranks other than 0).
    """
    from braintumor.data.splits import load_splits, save_splits
    from braintumor.models.registry import count_params

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    ckpt_path = last_checkpoint(out) if resume and last_checkpoint(out).is_file() else None
    if ckpt_path is not None and splits is None:
        fmt = fmt or open_format(cfg.data.spec, cfg.data.options)
        records = subsample(fmt.records(), cfg.data.limit, cfg.seed)
        splits = load_splits(out / runs.SPLITS_FILE, records)
    if cfg.model.aux_mask:  # before any image is decoded
        fmt = fmt or open_format(cfg.data.spec, cfg.data.options)
        _check_masks(fmt)
    data = build_data(cfg, splits=splits, fmt=fmt)
    task: Task = create_task(cfg.task, data.names, cfg.threshold, cfg.trainer.monitor)
    # The resolved config: what was actually used, so the run can be reproduced.
    cfg.data.channels, cfg.data.crop = data.channels, data.crop
    cfg.loss = cfg.loss or task.default_loss
    check_memory(cfg, data.in_channels, len(data.fmt.mask_channels))
    probe_model(cfg, data.in_channels, task.num_outputs)  # a size the model cannot take: now
    model = build_model(cfg, data.in_channels, task.num_outputs)
    device, runtime = pick_device(cfg.trainer.accelerator), runs.runtime_settings(cfg)
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
        memory_format=cfg.trainer.memory_format,
        compile=cfg.trainer.compile,
        max_minutes=cfg.trainer.max_minutes,
        precision=runtime["precision"],  # the layout depends on it
        mixer=BatchMixer(task.num_outputs, cfg.data.mixup_alpha, cfg.data.cutmix_alpha),
        aux_mask=_aux_mask(cfg, model, data),
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
    augment = getattr(train_loader.dataset, "transform", None)
    epoch_ckpt = EpochCheckpoint(last_checkpoint(out), augment=augment)
    # Checkpoint callbacks run last, in this order: the resume checkpoint must come
    # after the best-epoch one, whose state it saves.
    extra: list[Callback] = [
        FiniteLossGuard(cfg),
        *schedule_callbacks(cfg),
        ckpt,
        epoch_ckpt,
        *callbacks,
    ]
    if cfg.trainer.patience > 0:
        extra.append(
            EarlyStopping(
                monitor=f"val_{task.monitor}", mode=task.monitor_mode, patience=cfg.trainer.patience
            )
        )
    resume_step = read_progress(ckpt_path)["global_step"] if ckpt_path is not None else None
    trainer = build_trainer(
        cfg,
        out,
        extra,
        freeze=cfg.model.freeze_epochs > 0,
        batches_per_epoch=len(train_loader),
        resume_step=resume_step,
    )
    if before_write is not None:
        before_write()
    if trainer.is_global_zero and ckpt_path is None:
        _clear_run_files(out)  # e.g. a fold killed before its first checkpoint
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / runs.CONFIG_FILE)
        save_splits(data.splits, out / runs.SPLITS_FILE)
    _fit(trainer, module, train_loader, val_loader, ckpt_path)
    seconds = epoch_ckpt.train_seconds
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
    # The run is trained: its checkpoints (best, resume) are not part of the run folder.
    shutil.rmtree(checkpoint_dir(out), ignore_errors=True)
    plain_loss = task.build_loss(cfg.loss, None, 0.0)  # comparable across runs
    levers = Levers()
    if cfg.task == "segmentation" and cfg.trainer.levers in ("val", "tta"):
        sizes = (0,) if cfg.trainer.levers == "tta" else SIZES  # tta: no component removal
        levers, table, gates = select_on_val(model, task, val_loader, device, runtime, sizes)
        selected["levers"] = {**levers.as_dict(), "val_table": table, "gate_table": gates}
    metrics = evaluate_model(
        model, task, test_loader, plain_loss, device=device, runtime=runtime, levers=levers
    )
    metrics.update(
        split="test",
        model=cfg.model.name,
        params=count_params(model),
        train_seconds=round(seconds, 2),
        epochs_trained=trainer.current_epoch,
        **selected,
    )
    _write_outputs(cfg, out, model, task, data, module.history, metrics, levers)
    return metrics


def _aux_mask(cfg: Config, model: torch.nn.Module, data: Any) -> AuxMaskHead | None:
    """The auxiliary mask head of ``model.aux_mask`` (None when off)."""
    if not cfg.model.aux_mask:
        return None
    _check_masks(data.fmt)
    return AuxMaskHead(model, data.in_channels, cfg.data.image_size, cfg.model.aux_mask)


def _check_masks(fmt: DatasetFormat) -> None:
    if not fmt.mask_channels:
        raise ConfigError(
            f"model.aux_mask needs tumour masks, and data format {fmt.name!r} has "
            "none; use a data set with masks (e.g. lgg, brats) or set model.aux_mask=0"
        )


def _fit(
    trainer: L.Trainer,
    module: L.LightningModule,
    train_loader: Any,
    val_loader: Any,
    ckpt_path: Path | None,
) -> None:
    """``trainer.fit``, turning Lightning's handling of Ctrl+C back into KeyboardInterrupt.

    On Ctrl+C Lightning runs its shutdown, ignores SIGINT from then on and calls
    ``sys.exit(1)``; the caller needs to know it was an interrupt (to print the resume
    command), and the process needs Ctrl+C back.
    """
    try:
        trainer.fit(
            module,
            train_loader,
            val_loader,
            ckpt_path=str(ckpt_path) if ckpt_path is not None else None,
            weights_only=True,  # our own checkpoint holds tensors and numbers only
        )
    except SystemExit:
        if not trainer.interrupted:
            raise
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)
        raise KeyboardInterrupt from None


def _clear_run_files(out: Path) -> None:
    """Remove the files a run writes (only those) from ``out``."""
    for name in runs.RUN_ARTIFACTS:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _write_outputs(
    cfg: Config,
    out: Path,
    model: torch.nn.Module,
    task: Task,
    data: Any,
    history: list[dict[str, float]],
    metrics: dict[str, Any],
    levers: Levers,
) -> None:
    from braintumor.figures.plots import plot_confusion_matrix, plot_learning_curves

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
        inference=levers.as_dict() if levers.any else None,
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


__all__ = ["fit_run"]
