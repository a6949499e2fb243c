"""Patient-level train/val/test splits and K folds.

Slices of one patient are near-duplicates, so a patient never appears in two
splits. Patients are stratified by their majority label (ties go to the rarer
class, so tumor patients with many tumor-free slices still count as tumor
patients); classes with a single patient are pooled so that tiny classes do not
break stratification. An official test split (``rec.split == "test"``) is kept as
is, and validation is then carved from the remaining (training) patients only.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from braintumor.data.base import Record
from braintumor.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")
_FIX = "add data, or lower data.val_fraction / data.test_fraction (0 disables a split)"


def patient_labels(records: list[Record]) -> dict[str, int]:
    """Majority label of every patient, in order of first appearance."""
    overall = Counter(r.label for r in records)
    per: dict[str, Counter[int]] = defaultdict(Counter)
    for r in records:
        per[r.patient_id][r.label] += 1
    # Highest count first; among ties, the class rarest overall, then the smaller index.
    return {p: min(c, key=lambda lab: (-c[lab], overall[lab], lab)) for p, c in per.items()}


def _strata(patients: list[str], labels: dict[str, int]) -> list[list[str]]:
    groups: dict[int, list[str]] = defaultdict(list)
    for p in patients:
        groups[labels[p]].append(p)
    big = [g for g in groups.values() if len(g) >= 2]
    pooled = [p for g in groups.values() if len(g) < 2 for p in g]
    return big + ([pooled] if pooled else [])


def _take(strata: list[list[str]], n: int, rng: np.random.Generator) -> set[str]:
    """Pick ``n`` patients spread over ``strata`` in proportion (largest remainder)."""
    total = sum(len(s) for s in strata)
    if n <= 0 or total == 0:
        return set()
    quota = [n * len(s) / total for s in strata]
    counts = [int(q) for q in quota]
    order = sorted(range(len(strata)), key=lambda i: (-(quota[i] - counts[i]), rng.random()))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    picked: set[str] = set()
    for s, k in zip(strata, counts, strict=True):
        picked.update(rng.permutation(np.array(s, dtype=object))[:k].tolist())
    return picked


def _count(n_patients: int, fraction: float) -> int:
    """Patients for a split: at least one whenever its fraction is positive."""
    if fraction <= 0:
        return 0
    return max(1, round(fraction * n_patients))


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= f < 1:
            raise ConfigError(f"data.{name}={f} must be in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"data.val_fraction + data.test_fraction = {val_fraction + test_fraction:g} "
            "leaves nothing to train on; keep their sum below 1"
        )


def _by_patient(records: list[Record], groups: dict[str, set[str]]) -> dict[str, list[Record]]:
    where = {p: name for name, ps in groups.items() for p in ps}
    out: dict[str, list[Record]] = {name: [] for name in groups}
    for r in records:
        out[where[r.patient_id]].append(r)
    return out


def make_splits(
    records: list[Record], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[Record]]:
    """Split ``records`` into ``train``/``val``/``test`` by patient (see module docstring).

    Raises:
        DataError: a requested split would be empty, or nothing would be left to train on.
    """
    _check_fractions(val_fraction, test_fraction)
    rng = np.random.default_rng(seed)
    official = [r for r in records if r.split == "test"]
    rest = [r for r in records if r.split != "test"]
    labels = patient_labels(records)
    patients = list(dict.fromkeys(r.patient_id for r in rest))
    if not records:
        raise DataError("no samples to split; check the data set path and format")
    if official:
        # A patient present in both official splits cannot be separated; the official
        # test set is kept intact and that patient's other slices stay in training.
        n_val = _count(len(patients), val_fraction)
        if len(patients) - n_val < 1:
            raise DataError(
                f"only {len(patients)} training patient(s) besides the official test set: "
                f"too few to also carve a validation split (val_fraction={val_fraction:g}); "
                "add training data or set data.val_fraction=0"
            )
        val = _take(_strata(patients, labels), n_val, rng)
        out = _by_patient(rest, {"train": set(patients) - val, "val": val})
        out["test"] = official
        return out
    n_test = _count(len(patients), test_fraction)
    n_val = _count(len(patients), val_fraction)
    if len(patients) - n_test - n_val < 1:
        raise DataError(
            f"only {len(patients)} patient(s): too few for train + val ({val_fraction:g}) + "
            f"test ({test_fraction:g}) splits by patient; {_FIX}"
        )
    test = _take(_strata(patients, labels), n_test, rng)
    left = [p for p in patients if p not in test]
    val = _take(_strata(left, labels), n_val, rng)
    train = set(left) - val
    return _by_patient(records, {"train": train, "val": val, "test": test})


def kfold_splits(
    records: list[Record], k: int, seed: int, val_fraction: float = 0.15
) -> list[dict[str, list[Record]]]:
    """Patient-level stratified K folds.

    Without an official test split, fold ``i`` tests on part ``i`` and carves its
    validation patients from the other parts. With one, the official test set is the
    test split of every fold and the folds rotate the validation part over the
    training patients (the test set is never used for model selection).
    """
    _check_fractions(val_fraction, 0.0)
    official = [r for r in records if r.split == "test"]
    rest = [r for r in records if r.split != "test"]
    labels = patient_labels(records)
    patients = list(dict.fromkeys(r.patient_id for r in rest))
    if not isinstance(k, int) or k < 2:
        raise ConfigError(f"folds={k!r}: K-fold cross-validation needs at least 2 folds")
    if k > len(patients):
        raise DataError(
            f"{k} folds need at least {k} patients, found {len(patients)}; lower folds or add data"
        )
    rng = np.random.default_rng(seed)
    parts: list[list[str]] = [[] for _ in range(k)]
    slot = 0  # continue dealing where the previous class stopped, to balance part sizes
    for stratum in _strata(patients, labels):
        for p in rng.permutation(np.array(stratum, dtype=object)).tolist():
            parts[slot % k].append(p)
            slot += 1
    folds = []
    for i in range(k):
        held = set(parts[i])
        others = [p for p in patients if p not in held]
        if official:
            groups = {"train": set(others), "val": held}
            fold = _by_patient(rest, groups)
            fold["test"] = official
        else:
            n_val = _count(len(others), val_fraction) if len(others) > 1 else 0
            val = _take(_strata(others, labels), n_val, rng)
            fold = _by_patient(rest, {"train": set(others) - val, "val": val, "test": held})
        folds.append(fold)
    return folds


def save_splits(splits: dict[str, list[Record]], path: str | Path) -> None:
    """Write ``splits`` as JSON: record keys and patient ids per split, and counts."""
    data = {
        "version": 1,
        "counts": {name: len(recs) for name, recs in splits.items()},
        "splits": {
            name: {
                "keys": [r.key for r in recs],
                "patients": sorted({r.patient_id for r in recs}),
            }
            for name, recs in splits.items()
        },
    }
    from braintumor.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=1))


def _absolute(key: str) -> str:
    """A record key with its file part made absolute (``path#slice`` keeps its slice)."""
    path, sep, rest = key.partition("#")
    if "://" in path:
        return key
    return os.path.abspath(os.path.expanduser(path)) + sep + rest


def load_splits(path: str | Path, records: list[Record]) -> dict[str, list[Record]]:
    """Rebuild the splits saved by :func:`save_splits` from the data set's ``records``."""
    p = Path(path)
    bad = DataError(f"split file {p} is not a splits.json written by braintumor; retrain the run")
    try:
        data = json.loads(p.read_text())
        saved = data["splits"]
    except FileNotFoundError:
        raise DataError(f"split file {p} not found; check the path") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise bad from None
    if not isinstance(saved, dict) or not all(
        isinstance(e, dict) and isinstance(e.get("keys"), list) for e in saved.values()
    ):
        raise bad
    by_key = {r.key: r for r in records}
    # The same files named another way (a relative --data path against the absolute one
    # the run was trained with, or the reverse) still match.
    by_key.update({_absolute(r.key): r for r in records if _absolute(r.key) not in by_key})
    out: dict[str, list[Record]] = {}
    for name, entry in saved.items():
        entry["keys"] = [k if k in by_key else _absolute(k) for k in entry["keys"]]
        missing = [key for key in entry["keys"] if key not in by_key]
        if missing:
            raise DataError(
                f"split file {p} names {len(missing)} sample(s) not in the data set, e.g. "
                f"{missing[0]!r}; it was made from different data: point to the same data "
                "set or make new splits"
            )
        out[name] = [by_key[key] for key in entry["keys"]]
    return out


def describe(splits: dict[str, list[Record]]) -> str:
    """One line: samples and patients per split."""
    parts = []
    for name, recs in splits.items():
        n_pat = len({r.patient_id for r in recs})
        parts.append(f"{name}: {len(recs)} samples / {n_pat} patients")
    return "; ".join(parts)
