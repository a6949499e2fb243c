"""Patient-level splits: no leakage, official test kept, stratified, K folds."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from braintumor.data.base import Record
from braintumor.data.splits import (
    describe,
    kfold_splits,
    load_splits,
    make_splits,
    patient_labels,
    save_splits,
)
from braintumor.errors import ConfigError, DataError


def _records(
    n_patients: int, per: int = 3, n_classes: int = 4, test_every: int = 0
) -> list[Record]:
    out = []
    for p in range(n_patients):
        split = "test" if test_every and p % test_every == 0 else "train"
        for s in range(per):
            out.append(
                Record(
                    path=f"/d/p{p}/{s}.png",
                    patient_id=f"p{p}",
                    label=p % n_classes,
                    split=split if test_every else None,
                )
            )
    return out


def _patients(recs: list[Record]) -> set[str]:
    return {r.patient_id for r in recs}


def test_no_patient_in_two_splits_and_nothing_lost() -> None:
    recs = _records(40)
    sp = make_splits(recs, 0.15, 0.15, seed=0)
    tr, va, te = (_patients(sp[k]) for k in ("train", "val", "test"))
    assert not (tr & va) and not (tr & te) and not (va & te)
    assert sum(len(v) for v in sp.values()) == len(recs)
    assert len(te) == 6 and len(va) == 6 and len(tr) == 28
    assert "train: 84 samples / 28 patients" in describe(sp)


def test_splits_are_deterministic_and_depend_on_seed() -> None:
    recs = _records(40)
    a, b, c = (make_splits(recs, 0.2, 0.2, seed=s) for s in (1, 1, 2))
    assert [r.key for r in a["test"]] == [r.key for r in b["test"]]
    assert _patients(a["test"]) != _patients(c["test"])


def test_stratified_by_patient_label() -> None:
    recs = _records(80)  # 20 patients per class
    sp = make_splits(recs, 0.2, 0.2, seed=3)
    labels = patient_labels(recs)
    for name in ("val", "test"):
        per_class = Counter(labels[p] for p in _patients(sp[name]))
        assert sorted(per_class.values()) == [4, 4, 4, 4], per_class


def test_majority_label_ties_go_to_the_rarer_class() -> None:
    recs = [
        Record("a0", "a", 2),
        Record("a1", "a", 0),
        Record("b0", "b", 2),
        Record("b1", "b", 2),
        Record("c0", "c", 2),
    ]
    assert patient_labels(recs) == {"a": 0, "b": 2, "c": 2}


def test_official_test_split_is_kept_and_val_comes_from_training() -> None:
    recs = _records(30, test_every=5)
    official = [r for r in recs if r.split == "test"]
    sp = make_splits(recs, 0.2, 0.5, seed=0)  # test_fraction is ignored
    assert [r.key for r in sp["test"]] == [r.key for r in official]
    assert all(r.split != "test" for r in sp["train"] + sp["val"])
    assert not (_patients(sp["train"]) & _patients(sp["val"]))
    assert len(_patients(sp["val"])) == round(0.2 * 24)


def test_too_few_patients_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="too few"):
        make_splits(_records(2), 0.15, 0.15, seed=0)
    with pytest.raises(DataError, match="val_fraction=0"):
        make_splits(_records(2, test_every=2), 0.5, 0.0, seed=0)
    with pytest.raises(ConfigError, match="below 1"):
        make_splits(_records(10), 0.5, 0.5, seed=0)
    sp = make_splits(_records(3), 0.15, 0.15, seed=0)  # tiny but possible: one each
    assert [len(_patients(sp[k])) for k in ("train", "val", "test")] == [1, 1, 1]
    assert make_splits(_records(5), 0.0, 0.2, seed=0)["val"] == []


def test_unstratified_fallback_for_single_patient_classes() -> None:
    recs = _records(12, n_classes=12)  # every class has one patient
    sp = make_splits(recs, 0.25, 0.25, seed=0)
    assert [len(_patients(sp[k])) for k in ("train", "val", "test")] == [6, 3, 3]


def test_kfold_every_patient_tested_exactly_once() -> None:
    recs = _records(23)
    folds = kfold_splits(recs, k=5, seed=0)
    assert len(folds) == 5
    tested = Counter(p for f in folds for p in _patients(f["test"]))
    assert set(tested) == _patients(recs) and set(tested.values()) == {1}
    sizes = [len(_patients(f["test"])) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    for f in folds:
        tr, va, te = (_patients(f[k]) for k in ("train", "val", "test"))
        assert not (tr & va) and not (tr & te) and not (va & te) and va
        assert len(tr | va | te) == 23


def test_kfold_with_official_test_rotates_validation() -> None:
    recs = _records(20, test_every=4)
    folds = kfold_splits(recs, k=3, seed=0)
    official = [r.key for r in recs if r.split == "test"]
    val_seen = Counter(p for f in folds for p in _patients(f["val"]))
    assert all([r.key for r in f["test"]] == official for f in folds)
    assert set(val_seen.values()) == {1} and len(val_seen) == 15
    with pytest.raises(DataError, match="folds"):
        kfold_splits(_records(3), k=5, seed=0)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    recs = _records(20)
    sp = make_splits(recs, 0.2, 0.2, seed=0)
    path = tmp_path / "splits.json"
    save_splits(sp, path)
    back = load_splits(path, list(reversed(recs)))
    assert {k: [r.key for r in v] for k, v in back.items()} == {
        k: [r.key for r in v] for k, v in sp.items()
    }
    with pytest.raises(DataError, match="not in the data set"):
        load_splits(path, _records(5))
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(DataError, match="not a splits.json"):
        load_splits(tmp_path / "bad.json", recs)


def test_saved_splits_match_the_same_files_given_by_a_relative_path(tmp_path, monkeypatch) -> None:
    from braintumor.data.base import Record
    from braintumor.data.splits import load_splits, save_splits

    (tmp_path / "d").mkdir()
    absolute = [
        Record(path=str(tmp_path / "d" / f"p{i}.tif"), patient_id=f"p{i}") for i in range(4)
    ]
    save_splits({"train": absolute[:3], "test": absolute[3:]}, tmp_path / "splits.json")
    monkeypatch.chdir(tmp_path)
    relative = [Record(path=f"d/p{i}.tif", patient_id=f"p{i}") for i in range(4)]
    got = load_splits(tmp_path / "splits.json", relative)
    assert [r.path for r in got["test"]] == ["d/p3.tif"] and len(got["train"]) == 3
