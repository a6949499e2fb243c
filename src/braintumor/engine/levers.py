"""Inference levers of a segmenter, chosen on the validation split when training ends.

Three levers cost nothing at training time and are decided per run, on validation only:

- ``tta``: left-right flip test-time augmentation (:mod:`braintumor.inference.tta`);
- ``min_component_voxels``: each volume's slice masks are stacked and the 3-D connected
  components smaller than this many voxels (at the network's resolution) are dropped
  (:mod:`braintumor.inference.postprocess`), which removes the isolated false positives
  a 2-D network scatters over healthy slices; with ``keep_largest`` a volume whose
  components are all smaller keeps its largest one instead of becoming empty;
- ``gate_area``: the pipeline's default gate, detection read off the segmenter: a slice
  is "tumor" when its post-processed mask covers at least this fraction of it
  (:func:`choose_gate`; None when no threshold beats the segmenter alone on val).

:func:`choose_levers` scores every combination with the run's selection monitor (per
patient Dice by default) on the VAL split with the selected weights and keeps the best;
a candidate must beat the plain model by more than ``MIN_GAIN`` to be taken, so noise
does not switch a lever on. Ties go to no TTA and the smaller size; between the two
``keep_largest`` variants, which differ only where the removal empties a volume, ties go
to keeping when every val volume has a tumor (keeping then cannot lower any volume's
Dice: an emptied tumor volume scores 0) and to emptying otherwise. The choice is
written into the model card's ``inference`` entry, and the test metrics, ``evaluate``,
``predict``, ``pipeline`` and ``serve`` apply it. The test split is never read here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from braintumor.data.stacking import slice_position, volume_key
from braintumor.inference.postprocess import Levers, drop_small_components
from braintumor.inference.tta import flip_tta

SIZES = (0, 10, 40, 160, 320, 640)
# Area fractions tried for the segmenter-as-gate (0.002 of 128 x 128 is ~33 pixels).
GATE_AREAS = (0.0005, 0.001, 0.002, 0.004, 0.008)
MIN_GAIN = 0.002  # a lever must raise the val monitor by more than this to be taken
_LOGIT = 20.0  # post-processed masks re-enter the evaluators as +-20 logits


Forward = Callable[[Tensor], Tensor]  # images -> logits


def with_tta(forward: Forward, tta: bool, spatial: bool = True) -> Forward:
    """``forward`` averaged over the left-right flip, returned as logits again."""
    if not tta:
        return forward

    def run(x: Tensor) -> Tensor:
        probs = flip_tta(lambda t: torch.sigmoid(forward(t).float()), x, spatial=spatial)
        return torch.logit(probs.clamp(1e-6, 1 - 1e-6))

    return run


class _Volumes:
    """Where each sample of a data set sits: its volume and its slice position."""

    def __init__(self, records: Iterable[Any]) -> None:
        self.place: dict[str, tuple[str, int]] = {}
        self.size: dict[str, int] = defaultdict(int)
        for i, rec in enumerate(records):
            vkey = volume_key(rec)
            pos = slice_position(rec)
            self.place[rec.key] = (vkey, pos if pos is not None else i)
            self.size[vkey] += 1


def postprocessed(
    pairs: Iterable[tuple[Tensor, dict[str, Any]]],
    records: Iterable[Any],
    threshold: float,
    min_voxels: int,
    keep_largest: bool = False,
) -> Iterator[tuple[Tensor, dict[str, Any]]]:
    """(logits, batch) pairs with small 3-D components removed per volume.

    Streams: a volume is processed and yielded (as one pseudo-batch of its slices)
    as soon as all its slices have been seen, so memory holds only the volumes in
    flight. Pixels that post-processing removes get logit -20; kept ones keep theirs.
    ``keep_largest``: see :func:`~braintumor.inference.postprocess.drop_small_components`.
    """
    if min_voxels <= 1:
        yield from pairs
        return
    vols = _Volumes(records)
    held: dict[str, list[tuple[int, Tensor, dict[str, Any]]]] = defaultdict(list)
    for logits, batch in pairs:
        for j, key in enumerate(batch["path"]):
            vkey, pos = vols.place[key]
            item = {k: (v[j] if isinstance(v, (list, Tensor)) else v) for k, v in batch.items()}
            held[vkey].append((pos, logits[j], item))
            if len(held[vkey]) == vols.size[vkey]:
                yield _one_volume(held.pop(vkey), threshold, min_voxels, keep_largest)
    for rest in held.values():  # a loader that skipped samples (limit): still scored
        yield _one_volume(rest, threshold, min_voxels, keep_largest)


def _one_volume(
    slices: list[tuple[int, Tensor, dict[str, Any]]],
    threshold: float,
    min_voxels: int,
    keep_largest: bool,
) -> tuple[Tensor, dict[str, Any]]:
    slices.sort(key=lambda s: s[0])
    logits = torch.stack([s[1] for s in slices])  # S x C x H x W
    fg = (torch.sigmoid(logits.float()) > threshold).numpy()
    keep = np.stack(
        [drop_small_components(fg[:, c], min_voxels, keep_largest) for c in range(fg.shape[1])],
        axis=1,
    )
    out = torch.where(torch.from_numpy(keep), logits, torch.full_like(logits, -_LOGIT))
    items = [s[2] for s in slices]
    batch: dict[str, Any] = {}
    for k in items[0]:
        vals = [it[k] for it in items]
        batch[k] = torch.stack(vals) if isinstance(vals[0], Tensor) else vals
    return out, batch


def choose_levers(
    forward: Forward,
    task: Any,
    loader: Any,
    monitor: str,
    mode: str = "max",
    sizes: tuple[int, ...] = SIZES,
) -> tuple[Levers, list[dict[str, Any]], list[dict[str, Any]]]:
    """The best :class:`Levers` of a segmenter on ``loader`` (the VAL split) and the tables
    (TTA x component size; the gate's thresholds at the chosen pair, see :func:`choose_gate`).

    Args:
        forward: images -> logits of the trained network (eval mode, as it will run).
        task: the run's segmentation :class:`~braintumor.engine.tasks.Task`.
        loader: the validation loader (unshuffled, unaugmented).
        monitor: the metric that selected the epoch (without ``val_``).
        mode: ``max`` or ``min``.
    """
    records = loader.dataset.records
    table: list[dict[str, Any]] = []
    masks: dict[bool, list[tuple[Tensor, dict[str, Any]]]] = {}
    for tta in (False, True):
        run = with_tta(forward, tta)
        pairs = masks[tta] = []
        with torch.no_grad():
            for b in loader:  # kept as masks (1 byte a pixel) without the images
                fg = torch.sigmoid(run(b["image"]).float().cpu()) > task.threshold
                pairs.append((fg, {k: v for k, v in b.items() if k != "image"}))
        prefer = all_volumes_have_tumor(pairs, records)
        for size in sizes:
            for keep in (prefer, not prefer) if size > 1 else (False,):
                ev = task.evaluator(selecting=True)
                as_logits = ((torch.where(fg, _LOGIT, -_LOGIT), b) for fg, b in pairs)
                for logits, batch in postprocessed(as_logits, records, task.threshold, size, keep):
                    ev.update(logits, batch)
                value = ev.compute().get(monitor)
                row = {"tta": tta, "min_component_voxels": size, "keep_largest": keep}
                table.append({**row, monitor: value})
    sign = 1.0 if mode == "max" else -1.0
    base = next(r[monitor] for r in table if not r["tta"] and r["min_component_voxels"] == 0)
    best = max(table, key=lambda r: sign * (r[monitor] if r[monitor] is not None else -np.inf))
    if base is None or best[monitor] is None or sign * (best[monitor] - base) <= MIN_GAIN:
        levers = Levers()
    else:
        size = int(best["min_component_voxels"])
        levers = Levers(bool(best["tta"]), size, keep_largest=size > 1 and best["keep_largest"])
    volumes = postprocessed(
        ((torch.where(fg, _LOGIT, -_LOGIT), b) for fg, b in masks[levers.tta]),
        records,
        task.threshold,
        levers.min_component_voxels,
        levers.keep_largest,
    )
    gate, gate_table = choose_gate(list(volumes), task, monitor, mode)
    return replace(levers, gate_area=gate), table, gate_table


def all_volumes_have_tumor(
    pairs: Iterable[tuple[Tensor, dict[str, Any]]], records: Iterable[Any]
) -> bool:
    """Whether every volume of the (masks, batch) pairs has a tumor in its ground truth."""
    vols = _Volumes(records)
    has: dict[str, bool] = {}
    for _, batch in pairs:
        for j, key in enumerate(batch["path"]):
            vkey = vols.place[key][0]
            has[vkey] = has.get(vkey, False) or bool(batch["mask"][j].amax() > 0.5)
    return bool(has) and all(has.values())


def _detection(pred: np.ndarray, truth: np.ndarray) -> float | None:
    """Balanced accuracy of per-slice tumor / no-tumor calls (None: one class missing)."""
    if truth.all() or not truth.any():
        return None
    return float(((pred & truth).sum() / truth.sum() + (~pred & ~truth).sum() / (~truth).sum()) / 2)


def choose_gate(
    volumes: list[tuple[Tensor, dict[str, Any]]],
    task: Any,
    monitor: str,
    mode: str = "max",
    grid: tuple[float, ...] = GATE_AREAS,
) -> tuple[float | None, list[dict[str, Any]]]:
    """The segmenter-as-gate's area threshold, chosen on the VAL split, and its table.

    ``volumes``: (logits, batch) of the val split after the chosen levers. The
    segmenter alone calls a slice "tumor" when its mask is not empty; the gate when the
    mask covers at least ``area`` of the slice (and empties the others). The threshold
    taken has the best per-slice balanced accuracy among those that do not lower the
    run's monitor (per-patient Dice) below the segmenter alone's, and must beat the
    segmenter alone's detection by more than ``MIN_GAIN``; otherwise None (no gate).
    """
    if not volumes:
        return None, []
    fg = [logits > 0 for logits, _ in volumes]
    area = torch.cat([f.flatten(2).any(1).float().mean(1) for f in fg]).numpy()
    truth = torch.cat([b["mask"].flatten(1).amax(1) > 0.5 for _, b in volumes]).numpy()
    sign = 1.0 if mode == "max" else -1.0
    rows: list[dict[str, Any]] = []
    for th in (0.0, *grid):  # 0.0: no gate (the segmenter alone)
        keep = area >= th if th > 0 else area > 0
        ev = task.evaluator(selecting=True)
        start = 0
        for logits, batch in volumes:
            k = torch.from_numpy(keep[start : start + len(logits)])
            start += len(logits)
            ev.update(torch.where(k[:, None, None, None], logits, -_LOGIT), batch)
        rows.append(
            {
                "gate_area": th,
                monitor: ev.compute().get(monitor),
                "detection": _detection(keep, truth),
            }
        )
    alone = rows[0]
    if alone["detection"] is None or alone[monitor] is None:
        return None, rows
    fair = [
        r
        for r in rows[1:]
        if r["detection"] is not None
        and r[monitor] is not None
        and sign * (r[monitor] - alone[monitor]) >= 0
        and r["detection"] - alone["detection"] > MIN_GAIN
    ]
    if not fair:
        return None, rows
    return float(max(fair, key=lambda r: r["detection"])["gate_area"]), rows


def select_on_val(
    model: torch.nn.Module,
    task: Any,
    val_loader: Any,
    device: torch.device,
    runtime: dict[str, str] | None,
    sizes: tuple[int, ...] = SIZES,
) -> tuple[Levers, list[dict[str, Any]], list[dict[str, Any]]]:
    """:func:`choose_levers` for a trained network, run as evaluation runs it.

    ``sizes``: the component sizes tried (``(0,)``: TTA and the gate only, no removal;
    ``trainer.levers: tta``)."""
    from braintumor.engine.evaluate import evaluation_runtime
    from braintumor.precision import set_layout

    model.eval().to(device)
    network = evaluation_runtime(model, task, device, runtime)

    def forward(x: Tensor) -> Tensor:
        return network(x.to(device).float()).cpu()

    try:
        return choose_levers(forward, task, val_loader, task.monitor, task.monitor_mode, sizes)
    finally:
        set_layout(model, False)


__all__ = [
    "GATE_AREAS",
    "SIZES",
    "Levers",
    "all_volumes_have_tumor",
    "choose_gate",
    "choose_levers",
    "postprocessed",
    "select_on_val",
    "with_tta",
]
