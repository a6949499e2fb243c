"""Patient-level K-fold cross-validation: one full run folder per fold, then mean ± std.

::

    OUT/fold_0/ ... fold_<K-1>/   (each a complete run folder)
    OUT/cv_metrics.json           {"folds": K, "metrics": {name: {mean, std, values}}, ...}

``std`` is the sample standard deviation (ddof=1) over the folds.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import Callback

from braintumor.config import Config
from braintumor.engine.data import open_format, subsample
from braintumor.engine.fit import fit_run
from braintumor.engine.resume import last_checkpoint
from braintumor.engine.tasks import COUNT_KEYS, scalar_metrics
from braintumor.inference import runs

# Bookkeeping numbers that are not model quality.
_NOT_SUMMARISED = COUNT_KEYS | {"params", "best_epoch", "epochs_trained"}


def summarize_folds(fold_metrics: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean and sample std of every scalar metric present in all folds."""
    scalars = [scalar_metrics(m) for m in fold_metrics]
    keys = [k for k in scalars[0] if all(k in s for s in scalars) and k not in _NOT_SUMMARISED]
    summary: dict[str, dict[str, Any]] = {}
    for k in keys:
        values = [s[k] for s in scalars]
        finite = [v for v in values if math.isfinite(v)]
        mean = sum(finite) / len(finite) if finite else math.nan
        if len(finite) > 1:
            std = math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1))
        else:
            std = math.nan
        summary[k] = {"mean": mean, "std": std, "values": values}
    return summary


def cross_validate(
    cfg: Config,
    out: Path,
    *,
    callbacks: Sequence[Callback] = (),
    before_write: Callable[[], None] | None = None,
    resume: bool = False,
) -> Path:
    """Train ``cfg.folds`` models on patient-level folds; write ``OUT/cv_metrics.json``.

    ``before_write`` is called once, by the first fold, just before its first file.
    With ``resume``, finished folds are kept (their metrics read back), an interrupted
    fold continues from its epoch checkpoint and the others are trained.
    """
    from braintumor.data.splits import kfold_splits

    fmt = open_format(cfg.data.spec, cfg.data.options)
    records = subsample(fmt.records(), cfg.data.limit, cfg.seed)
    folds = kfold_splits(records, k=cfg.folds, val_fraction=cfg.data.val_fraction, seed=cfg.seed)
    results = []
    for i, splits in enumerate(folds):
        fold_cfg = copy.deepcopy(cfg)
        fold_cfg.folds = 0  # each fold folder is an ordinary run, reproducible on its own
        fold = out / f"fold_{i}"
        if resume and runs.holds_model(fold):
            results.append(json.loads((fold / runs.METRICS_FILE).read_text()))
            continue
        results.append(
            fit_run(
                fold_cfg,
                fold,
                fmt=fmt,
                splits=splits,
                callbacks=callbacks,
                before_write=before_write if i == 0 else None,
                resume=resume and last_checkpoint(fold).is_file(),
            )
        )
    if rank_zero_only.rank == 0:
        summary = {
            "folds": cfg.folds,
            "task": cfg.task,
            "model": cfg.model.name,
            "data": cfg.data.spec,
            "std": "sample standard deviation over folds (ddof=1)",
            "metrics": summarize_folds(results),
            "fold_dirs": [f"fold_{i}" for i in range(len(results))],
        }
        runs.write_json(out / runs.CV_FILE, summary)
    return out
