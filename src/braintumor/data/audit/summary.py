"""One pass over a data set: counts per split and class, sizes, modes, masks, duplicates."""

from __future__ import annotations

import os
import time
from collections import Counter, defaultdict
from typing import Any

from braintumor.data.audit.duplicates import (
    EDGE_CORRELATION,
    NEAR_THRESHOLD,
    count_exact_duplicates,
    count_near_duplicates,
)
from braintumor.data.audit.quirks import patient_quirks
from braintumor.data.audit.scan import ScanItem, file_type, scan_record
from braintumor.data.base import DatasetFormat, Record
from braintumor.errors import BrainTumorError, DataError

SPLIT_ORDER = ("train", "val", "test")
# Class names that mean "no tumor" in the supported sets (brain-tumor-mri, navoneel, BUSI).
NO_TUMOR_CLASSES = {"notumor", "no_tumor", "no tumor", "no", "normal", "healthy", "negative"}


def assign_splits(
    records: list[Record], *, seed: int, val_fraction: float, test_fraction: float
) -> tuple[dict[str, str], str]:
    """Record key -> split name: the official splits if any, else the patient-level split."""
    if any(r.split for r in records):
        return {r.key: r.split or "train" for r in records}, "official"
    from braintumor.data.splits import make_splits

    try:
        parts = make_splits(records, val_fraction, test_fraction, seed)
    except BrainTumorError as exc:  # e.g. one patient: still worth inspecting, unsplit
        return {r.key: "train" for r in records}, f"none ({exc})"
    out = {}
    for name, members in parts.items():
        for m in members:
            out[m.key if isinstance(m, Record) else str(m)] = name
    source = f"patient-level (seed={seed}, val={val_fraction}, test={test_fraction})"
    return out, source


def _ordered(names: set[str]) -> list[str]:
    return [s for s in SPLIT_ORDER if s in names] + sorted(names - set(SPLIT_ORDER))


def _progress(seq: list[Record], enabled: bool, label: str):
    if not enabled:
        return seq
    from rich.console import Console
    from rich.progress import track

    return track(seq, description=label, console=Console(stderr=True), transient=True)


def inspect_dataset(
    fmt: DatasetFormat,
    *,
    seed: int = 42,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    near_duplicates: bool = True,
    progress: bool = True,
    near_threshold: int = NEAR_THRESHOLD,
) -> dict[str, Any]:
    """Summarise a data set and audit it for duplicates and leakage.

    Args:
        fmt: The format instance (``create_format("brain-tumor-mri:/data")``).
        seed, val_fraction, test_fraction: The patient-level split reported when the
            data set has no official split (the split training would use).
        near_duplicates: Also look for near-duplicates (perceptual hash).
        progress: Show a progress bar on stderr.
        near_threshold: Largest Hamming distance (of 64 bits) that counts as near.

    Returns:
        A JSON-able dict; ``warnings`` holds human sentences about problems found.
    """
    t0 = time.perf_counter()
    records = fmt.records()
    split_of, split_source = assign_splits(
        records, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction
    )
    path_count = Counter(r.path for r in records)
    names = fmt.classes  # once: some formats derive it from a scan of the records
    tumor = [c.lower() not in NO_TUMOR_CLASSES for c in names]
    items: list[ScanItem] = []
    for rec in _progress(records, progress, f"inspecting {fmt.name}"):
        # Hash the file bytes only when the record is one whole file of its own.
        single = path_count[rec.path] == 1 and rec.extra.get("slice") is None
        decode = not (single and os.path.isfile(rec.path))
        split = split_of.get(rec.key, "unassigned")
        try:
            items.append(scan_record(fmt, rec, split, decode, near_duplicates, tumor))
        except (OSError, ValueError, BrainTumorError) as exc:
            items.append(ScanItem(key=rec.key, split=split, error=f"{type(exc).__name__}: {exc}"))
    if items and all(it.error for it in items):
        raise DataError(f"none of the {len(items)} samples could be read; e.g. {items[0].error}")

    splits = _ordered({it.split for it in items})
    class_of = [names[r.label] if 0 <= r.label < len(names) else "-" for r in records]
    columns = names + (["-"] if "-" in class_of else [])  # "-": no label
    per_split_class = {s: dict.fromkeys(columns, 0) for s in splits}
    for c, it in zip(class_of, items, strict=True):
        per_split_class[it.split][c] += 1
    split_patients: dict[str, set[str]] = defaultdict(set)
    patient_splits: dict[str, set[str]] = defaultdict(set)
    for rec, it in zip(records, items, strict=True):
        split_patients[it.split].add(rec.patient_id)
        patient_splits[rec.patient_id].add(it.split)

    ok = [it for it in items if it.error is None]
    sizes = Counter(it.hw for it in ok if it.hw)
    by_area = sorted(sizes, key=lambda hw: (hw[0] * hw[1], hw))
    tumor_known = [it.tumor for it in ok if it.tumor is not None]
    summary: dict[str, Any] = {
        "format": fmt.name,
        "root": str(fmt.root) if fmt.root is not None else None,
        "options": fmt.options,
        "n_samples": len(records),
        "n_patients": len({r.patient_id for r in records}),
        "classes": {c: class_of.count(c) for c in columns},
        "split_source": split_source,
        "splits": {s: sum(per_split_class[s].values()) for s in splits},
        "per_split_class": per_split_class,
        "patients_per_split": {s: len(split_patients[s]) for s in splits},
        "patients_in_several_splits": sum(len(v) > 1 for v in patient_splits.values()),
        "image_sizes": {
            "most_common": [[f"{h}x{w}", n] for (h, w), n in sizes.most_common(5)],
            "n_distinct": len(sizes),
            "min": "{}x{}".format(*by_area[0]) if by_area else None,
            "max": "{}x{}".format(*by_area[-1]) if by_area else None,
        },
        "modes": dict(Counter(it.mode for it in ok if it.mode)),
        "file_types": dict(Counter(file_type(r.path) for r in records)),
        "channels": fmt.natural_channels,
        "mask_channels": list(fmt.mask_channels),
        "n_with_tumor": sum(bool(t) for t in tumor_known),
        "tumor_fraction": round(sum(tumor_known) / len(tumor_known), 4) if tumor_known else None,
        "tumor_source": "mask" if fmt.mask_channels else "label",
        "n_blank": sum(it.blank for it in ok),
        "n_unreadable": len(items) - len(ok),
        "unreadable_examples": [[it.key, it.error] for it in items if it.error][:5],
    }
    pids = {r.key: r.patient_id for r in records}
    traits = [(pids[it.key], it.same_channels, it.level) for it in ok if not it.blank]
    if fmt.intensity == "unit" and any(t[1] is not None for t in traits):
        summary["patient_quirks"] = patient_quirks(*zip(*traits, strict=True))
    summary.update(count_exact_duplicates(ok, splits))
    if near_duplicates:
        summary.update(count_near_duplicates(ok, splits, near_threshold))
        summary["near_method"] = (
            f"64-bit pHash distance <= {near_threshold} and edge correlation >= {EDGE_CORRELATION}"
        )
    summary["warnings"] = _warnings(summary)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    return summary


def _warnings(s: dict[str, Any]) -> list[str]:
    out = []
    names = list(s["splits"])
    for later, n in s["duplicates_across_splits"].items():
        if later != "total" and n:
            earlier = "/".join(names[: names.index(later)])
            what = "byte-identical" if s["exact_method"] == "file" else "identical"
            out.append(
                f"{n} {later} files are {what} to {earlier} files: "
                "evaluation on this split is inflated"
            )
    for split, n in s["duplicates_within"].items():
        if split != "total" and n:
            out.append(
                f"{n} extra exact copies within {split}: these images weigh double, "
                "and a random split would leak them"
            )
    for later, n in s.get("near_duplicates_across_splits", {}).items():
        if later != "total" and n:
            out.append(
                f"{n} {later} files are near-duplicates of earlier-split files "
                f"({s['near_method']}): look at the examples"
            )
    quirks = s.get("patient_quirks") or {}
    if quirks.get("identical_channels") or quirks.get("dark"):
        out.append(
            f"patients repeating one image in every channel: {len(quirks['identical_channels'])}"
            f"; much darker than the others: {len(quirks['dark'])} (see patient_quirks); "
            "consider per-volume normalisation and data.channel_dropout / data.intensity_aug"
        )
    if s["patients_in_several_splits"]:
        out.append(
            f"{s['patients_in_several_splits']} patients have samples in several "
            "splits: patient-level leakage"
        )
    if s["n_patients"] == s["n_samples"] and s["n_samples"] > 1:
        out.append(
            "no patient ids (one per sample): slices of the same patient may sit in "
            "different splits"
        )
    if s["split_source"].startswith("none"):
        out.append(f"no patient-level split possible: {s['split_source'][6:-1]}")
    counts = [n for c, n in s["classes"].items() if c != "-"]
    if len(counts) > 1 and max(counts) > 3 * min(counts):
        out.append(f"classes are imbalanced ({s['classes']}): prefer balanced accuracy / macro F1")
    if len(s["modes"]) > 1:
        out.append(f"image modes are mixed ({s['modes']}): channels are unified by preprocessing")
    if s["image_sizes"]["n_distinct"] > 1:
        sz = s["image_sizes"]
        out.append(
            f"{sz['n_distinct']} different image sizes (from {sz['min']} to "
            f"{sz['max']}): images are resized, check aspect ratios in the preview"
        )
    if s["n_blank"]:
        out.append(
            f"{s['n_blank']} blank samples (one constant value), left out of duplicate counts"
        )
    if s["n_unreadable"]:
        out.append(
            f"{s['n_unreadable']} samples could not be read, e.g. {s['unreadable_examples'][0][0]}"
        )
    return out
