"""Gated vs un-gated: what the classifier gate does to segmentation, on one patient split.

Both variants are scored on the same slices at each slice's own resolution:
Dice / IoU / mIoU per image and per patient (slice counts summed per patient), HD95,
and what the gate is for: false-positive pixels and slices on healthy slices (no
tumor in the truth), and what it costs: tumor slices wrongly emptied by the gate.

Per-slice detection (a slice is "tumor" when its output mask is not empty) also says
where its errors lie along each volume (:func:`edge_errors`): on LGG most missed tumor
slices are among the first or last annotated slices of their tumor, where the
annotation's own extent is least certain, rather than inside it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from braintumor.data import DatasetFormat, Record, create_format, parse_spec
from braintumor.data.intensity import rescale_intensity
from braintumor.data.registry import intensity_scale
from braintumor.data.splits import load_splits, make_splits
from braintumor.data.stacking import slice_position, volume_key
from braintumor.errors import DataError
from braintumor.inference.runs import load_run, write_json
from braintumor.metrics.segmentation import SegmentationEvaluator
from braintumor.pipeline.core import TwoStagePipeline, progress
from braintumor.pipeline.seg_gate import DEFAULT_GATE

METRICS_FILE = "pipeline_metrics.json"
HEADLINE = ("dice", "iou", "miou", "dice_per_patient_mean", "iou_per_patient_mean", "hd95")
EDGE_SLICES = 2  # "at the tumor's ends": within this many slices of its annotated extent


def _same_data(spec_a: str, spec_b: str) -> bool:
    (na, pa), (nb, pb) = parse_spec(spec_a), parse_spec(spec_b)
    if na != nb:
        return False
    if pa is None or pb is None:
        return pa == pb
    return Path(pa).expanduser().resolve() == Path(pb).expanduser().resolve()


def choose_split(
    segmenter_run: Path,
    seg_card: dict[str, Any],
    seg_cfg: Any,
    data_spec: str,
    records: list[Record],
    split: str,
) -> tuple[list[Record], str]:
    """The records of ``split`` and a sentence saying where the split comes from."""

    saved = segmenter_run / "splits.json"
    same = _same_data(seg_card["data"]["spec"], data_spec)
    if saved.is_file() and same:
        try:
            chosen = load_splits(saved, records).get(split, [])
        except DataError:  # same format, different data (moved, regenerated, subset)
            chosen = []
        if chosen:
            return chosen, f"the segmenter's saved splits.json ({split})"
    why = (
        "the saved split does not match this data (changed since training?), so it may "
        "hold patients the segmenter trained on"
        if same
        else "the segmenter was trained on other data"
    )
    fresh = make_splits(
        records,
        val_fraction=seg_cfg.data.val_fraction,
        test_fraction=seg_cfg.data.test_fraction,
        seed=seg_cfg.seed,
    )
    return list(fresh[split]), (
        f"a fresh patient split of {data_spec} with the segmenter's seed {seg_cfg.seed} "
        f"({split}); {why}"
    )


def _classifier_overlap(classifier_run: Path, chosen: list[Record]) -> int | None:
    """How many evaluated slices the classifier trained or validated on (None: unknown).

    Compares sample keys with the classifier's ``splits.json`` directly (not through
    the data set), so a classifier trained on a larger or smaller version of the same
    data still counts its overlap.
    """

    try:
        saved = json.loads((classifier_run / "splits.json").read_text())["splits"]
        seen = {k for name in ("train", "val") for k in saved.get(name, {}).get("keys", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return sum(r.key in seen for r in chosen)


class _Tally:
    """Evaluator plus the healthy-slice and emptied-slice counts of one variant."""

    def __init__(self, channels: list[str]) -> None:
        self.ev = SegmentationEvaluator(channels)
        self.fp_pixels = self.fp_slices = 0

    def add(self, pred: np.ndarray, truth: np.ndarray, pid: str) -> None:
        self.ev.update(pred[None], truth[None], [pid])
        if not truth.any():  # a healthy slice: every predicted pixel is a false positive
            self.fp_pixels += int(pred.any(axis=0).sum())
            self.fp_slices += int(pred.any())

    def summary(self, n_healthy: int) -> dict[str, Any]:
        m = self.ev.compute()
        return {
            **{k: m.get(k) for k in HEADLINE},
            "fp_pixels_healthy": self.fp_pixels,
            "fp_slices_healthy": self.fp_slices,
            "fp_slice_rate_healthy": self.fp_slices / n_healthy if n_healthy else None,
            "per_channel": {
                c: {k: v.get(k) for k in HEADLINE} for c, v in m["per_channel"].items()
            },
        }


def score_pipeline(
    pipe: TwoStagePipeline,
    fmt: DatasetFormat,
    records: list[Record],
    data_scale: str = "unit",
    *,
    batch: int = 16,
    show_progress: bool = False,
    description: str = "pipeline",
) -> dict[str, Any]:
    """Gated and un-gated scores of ``pipe`` on ``records`` of ``fmt`` (with masks).

    The slices of one volume (records with a slice position) go through the pipeline
    together and in order, as ``pipeline`` sends a volume: per-volume scaling, 2.5D
    neighbours and 3-D post-processing see the whole volume. Other records go in
    chunks of ``batch``.

    Returns:
        ``n_healthy_slices``, ``n_tumor_slices``, ``ungated`` and ``gated`` (metrics and
        false positives on healthy slices) and ``gate`` (what the gate emptied).
    """
    cls_scale, seg_scale = pipe.classifier.intensity, pipe.segmenter.intensity
    gated, ungated = _Tally(pipe.mask_channels), _Tally(pipe.mask_channels)
    n_healthy = n_tumor = gate_tp = gate_tn = emptied_hit = 0
    found = {"ungated": [0, 0], "gated": [0, 0]}  # slices called tumor: [true, false]
    edges = {"ungated": [0, 0], "gated": [0, 0]}  # [missed at the ends, flagged next to]
    for group, volume in progress(_groups(records, batch), description, show_progress):
        samples = [fmt.load(rec) for rec in group]
        results = pipe.predict(
            [rescale_intensity(s["image"], data_scale, cls_scale) for s in samples],
            [rescale_intensity(s["image"], data_scale, seg_scale) for s in samples],
            batch_size=batch,
            volume=volume,
        )
        for s, r in zip(samples, results, strict=True):
            truth = np.asarray(s["mask"], dtype=np.uint8)
            pid = str(s["patient_id"])
            ungated.add(r.raw_mask, truth, pid)
            gated.add(r.mask, truth, pid)
            tumor = bool(truth.any())
            n_tumor += tumor
            n_healthy += not tumor
            gate_tp += tumor and r.kept
            gate_tn += (not tumor) and (not r.kept)
            emptied_hit += tumor and not r.kept and bool(r.raw_mask.any())
            for name, mask in (("ungated", r.raw_mask), ("gated", r.mask)):
                if mask.any():
                    found[name][0 if tumor else 1] += 1
        if volume:
            truth_z = [bool(np.asarray(s["mask"]).any()) for s in samples]
            for name, attr in (("ungated", "raw_mask"), ("gated", "mask")):
                called = [bool(getattr(r, attr).any()) for r in results]
                for k, n in enumerate(edge_errors(truth_z, called)):
                    edges[name][k] += n
    variants = {"ungated": ungated.summary(n_healthy), "gated": gated.summary(n_healthy)}
    for name, (tp, fp) in found.items():
        # Detection by the output itself: a slice is "tumor" when its mask is not empty.
        variants[name]["detection"] = {
            **_detection(tp, n_tumor - tp, n_healthy - fp, fp),
            "missed_at_tumor_ends": edges[name][0],
            "flagged_next_to_tumor": edges[name][1],
        }
    return {
        "n_healthy_slices": n_healthy,
        "n_tumor_slices": n_tumor,
        **variants,
        "gate": {
            "tumor_slices_wrongly_emptied": n_tumor - gate_tp,
            "wrongly_emptied_where_segmenter_found_tumor": emptied_hit,
            "healthy_slices_emptied": gate_tn,
            **_detection(gate_tp, n_tumor - gate_tp, gate_tn, n_healthy - gate_tn),
        },
    }


def _detection(tp: int, fn: int, tn: int, fp: int) -> dict[str, float | None]:
    """Per-slice sensitivity, specificity and balanced accuracy (None: undefined)."""
    sens = tp / (tp + fn) if tp + fn else None
    spec = tn / (tn + fp) if tn + fp else None
    both = sens is not None and spec is not None
    return {
        "sensitivity": sens,
        "specificity": spec,
        "balanced_accuracy": (sens + spec) / 2 if both else None,  # type: ignore[operator]
        "tumor_slices_missed": fn,
        "healthy_slices_flagged": fp,
    }


def edge_errors(
    truth: list[bool], called: list[bool], within: int = EDGE_SLICES
) -> tuple[int, int]:
    """Detection errors of one volume (slices in order) at the ends of its tumor.

    Returns (missed tumor slices that are among the first or last ``within`` annotated
    tumor slices, healthy slices called tumor that lie within ``within`` slices of an
    annotated tumor slice). A volume without tumor has neither.
    """
    tumor = [i for i, t in enumerate(truth) if t]
    if not tumor:
        return 0, 0
    ends = set(tumor[:within]) | set(tumor[-within:])
    missed = sum(1 for i in tumor if not called[i] and i in ends)
    near = sum(
        1
        for i, (t, c) in enumerate(zip(truth, called, strict=True))
        if c and not t and min(abs(i - j) for j in tumor) <= within
    )
    return missed, near


def _groups(records: list[Record], batch: int) -> list[tuple[list[Record], bool]]:
    """Whole volumes in slice order (``True``), then chunks of the other records."""
    volumes: dict[str, list[Record]] = defaultdict(list)
    flat: list[Record] = []
    for rec in records:
        if slice_position(rec) is None:
            flat.append(rec)
        else:
            volumes[volume_key(rec)].append(rec)
    out = [(sorted(v, key=lambda r: slice_position(r) or 0), True) for v in volumes.values()]
    out += [(flat[i : i + batch], False) for i in range(0, len(flat), batch)]
    return out


def evaluate_pipeline(
    classifier_run: str | Path | None,
    segmenter_run: str | Path,
    data_spec: str,
    out: str | Path,
    split: str = "test",
    threshold: float | None = None,
    *,
    options: dict[str, Any] | None = None,
    device: str | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Score gated and un-gated segmentation on ``split`` of ``data_spec``.

    Writes ``out/pipeline_metrics.json`` and returns the same dict.
    """

    seg_run = load_run(segmenter_run)
    pipe = TwoStagePipeline.from_runs(classifier_run, segmenter_run, threshold, device)
    if options is None and _same_data(seg_run.card["data"]["spec"], data_spec):
        options = seg_run.card["data"].get("options") or {}
    fmt = create_format(data_spec, **(options or {}))
    if list(fmt.mask_channels) != pipe.mask_channels:
        raise DataError(
            f"{data_spec} has mask channels {list(fmt.mask_channels) or 'none'} but the "
            f"segmenter predicts {pipe.mask_channels}; evaluate on data with the same masks"
        )
    all_records = fmt.records()
    records, source = choose_split(
        Path(segmenter_run), seg_run.card, seg_run.cfg, data_spec, all_records, split
    )
    if not records:
        raise DataError(f"the {split} split of {data_spec} is empty; nothing to evaluate")
    data_scale = intensity_scale(data_spec)
    scores = score_pipeline(
        pipe,
        fmt,
        records,
        data_scale,
        show_progress=show_progress,
        description=f"pipeline on {split}",
    )
    result = {
        "classifier": str(classifier_run or DEFAULT_GATE),
        "segmenter": str(segmenter_run),
        "data": data_spec,
        "split": split,
        "split_source": source,
        "threshold": pipe.threshold,
        "n_images": len(records),
        "n_patients": len({r.patient_id for r in records}),
        "classifier_saw_test_slices": _classifier_overlap(
            Path(classifier_run or DEFAULT_GATE), records
        ),
        **scores,
        "resolution": "each slice at its own size (the segmenter's output mapped back)",
    }
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / METRICS_FILE, result)
    return result


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def comparison_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, un-gated, gated) rows of a ``pipeline_metrics.json`` dict, for tables."""
    u, g = result["ungated"], result["gated"]
    rows = [
        ("Dice (mean per image)", "dice"),
        ("IoU (mean per image)", "iou"),
        ("mIoU (tumor + background)", "miou"),
        ("Dice (mean per patient)", "dice_per_patient_mean"),
        ("IoU (mean per patient)", "iou_per_patient_mean"),
        ("HD95 (px)", "hd95"),
        (f"FP pixels on {result['n_healthy_slices']} healthy slices", "fp_pixels_healthy"),
        ("FP slices among healthy slices", "fp_slices_healthy"),
    ]
    out = [(label, _fmt(u.get(k)), _fmt(g.get(k))) for label, k in rows]
    gate = result["gate"]
    emptied = gate.get("wrongly_emptied_where_segmenter_found_tumor")
    out.append(
        (
            f"tumor slices the gate emptied (of {result['n_tumor_slices']})",
            "0",
            _fmt(emptied if emptied is not None else gate["tumor_slices_wrongly_emptied"]),
        )
    )
    # Older pipeline_metrics.json files have no "detection" entry.
    det = [v.get("detection") or {} for v in (u, g)]
    detection_rows = [
        (f"tumor slices with an empty mask (of {result['n_tumor_slices']})", "tumor_slices_missed"),
        (f"  of them among the tumor's first / last {EDGE_SLICES} slices", "missed_at_tumor_ends"),
        (f"healthy slices with a mask within {EDGE_SLICES} slices of the tumor",
         "flagged_next_to_tumor"),
        ("detection bal. acc (mask not empty)", "balanced_accuracy"),
    ]  # fmt: skip
    out += [(label, _fmt(det[0].get(k)), _fmt(det[1].get(k))) for label, k in detection_rows]
    return out


def format_table(result: dict[str, Any]) -> str:
    """Plain-text side-by-side table of gated vs un-gated metrics."""
    rows = [
        ("metric", "segmenter alone", f"gated (p >= {result['threshold']})"),
        *comparison_rows(result),
    ]
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{a:<{w[0]}}  {b:>{w[1]}}  {c:>{w[2]}}" for a, b, c in rows]
    lines.insert(1, "-" * len(lines[0]))
    head = (
        f"{result['n_images']} slices of {result['n_patients']} patients, "
        f"{result['split']} split from {result['split_source']}"
    )
    return head + "\n" + "\n".join(lines)
