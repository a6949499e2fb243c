"""SliceDataset: item contract, disk cache reuse, atomic cache writes."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from braintumor.data import create_format
from braintumor.data.base import DatasetFormat
from braintumor.data.dataset import SliceDataset, cache_root

OPTS = {"n_patients": 3, "slices_per_patient": 2, "size": 48}


def _fmt(**kw: Any) -> DatasetFormat:
    return create_format("synthetic", **{**OPTS, **kw})


def _count_loads(fmt: DatasetFormat, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    original = fmt.load

    def load(rec: Any) -> dict[str, Any]:
        calls.append(rec.key)
        return original(rec)

    monkeypatch.setattr(fmt, "load", load)
    return calls


def test_items_follow_the_contract(tmp_path: Path) -> None:
    fmt = _fmt(target="labels")
    recs = fmt.records()
    ds = SliceDataset(fmt, recs, image_size=32, channels=None, crop=True, cache_dir=tmp_path)
    assert len(ds) == 6 and ds.classes == fmt.classes and ds.mask_channels == ["NCR", "ED", "ET"]
    np.testing.assert_array_equal(ds.labels, [r.label for r in recs])
    item = ds[1]
    assert item["image"].shape == (4, 32, 32) and item["image"].dtype == torch.float32
    assert item["mask"].shape == (3, 32, 32) and item["mask"].dtype == torch.float32
    assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
    assert item["label"].dtype == torch.long and item["label"].ndim == 0
    assert item["patient_id"] == recs[1].patient_id and item["path"] == recs[1].key
    # The cached float16 image matches a fresh preparation closely.
    from braintumor.data.preprocess import prepare_sample

    fresh = prepare_sample(fmt.load(recs[1]), 32, None, True)["image"]
    np.testing.assert_allclose(item["image"].numpy(), fresh, atol=2e-3)


def test_no_mask_key_without_mask_channels(tmp_path: Path) -> None:
    from braintumor.data.formats.synthetic import SyntheticFormat

    class NoMasks(SyntheticFormat):
        @property
        def mask_channels(self) -> list[str]:
            return []

    fmt = NoMasks(None, **OPTS, modalities=1)
    ds = SliceDataset(fmt, fmt.records()[:2], 32, None, True, cache_dir=tmp_path)
    assert "mask" not in ds[0] and ds[0]["image"].shape == (1, 32, 32)
    assert not (ds.cache_path / "masks.npy").exists()


def test_second_construction_reads_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fmt = _fmt()
    calls = _count_loads(fmt, monkeypatch)
    first = SliceDataset(fmt, fmt.records(), 32, None, True, cache_dir=tmp_path)
    assert len(calls) == 6
    _ = [first[i] for i in range(len(first))]  # epochs read the cache, never load
    second = SliceDataset(fmt, fmt.records(), 32, None, True, cache_dir=tmp_path)
    assert len(calls) == 6 and second.cache_path == first.cache_path
    torch.testing.assert_close(first[3]["image"], second[3]["image"])
    SliceDataset(fmt, fmt.records(), 40, None, True, cache_dir=tmp_path)  # new geometry
    assert len(calls) == 12
    other = _fmt(seed=1)  # other data, other cache
    assert (
        SliceDataset(other, other.records(), 32, None, True, cache_dir=tmp_path).cache_path
        != first.cache_path
    )


def test_interrupted_build_leaves_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fmt = _fmt()
    original = fmt.load
    state = {"n": 0}

    def flaky(rec: Any) -> dict[str, Any]:
        state["n"] += 1
        if state["n"] == 4:
            raise KeyboardInterrupt  # e.g. Ctrl-C half way
        return original(rec)

    monkeypatch.setattr(fmt, "load", flaky)
    with pytest.raises(KeyboardInterrupt):
        SliceDataset(fmt, fmt.records(), 32, None, True, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither a final nor a temporary folder
    ds = SliceDataset(fmt, fmt.records(), 32, None, True, cache_dir=tmp_path)
    assert len(ds) == 6 and (ds.cache_path / "meta.json").is_file()


def test_damaged_cache_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fmt = _fmt()
    ds = SliceDataset(fmt, fmt.records(), 32, None, True, cache_dir=tmp_path)
    (ds.cache_path / "meta.json").unlink()
    calls = _count_loads(fmt, monkeypatch)
    again = SliceDataset(fmt, fmt.records(), 32, None, True, cache_dir=tmp_path)
    assert len(calls) == 6 and again[0]["image"].shape == (4, 32, 32)


def test_cache_location_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAINTUMOR_CACHE", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.delenv("BRAINTUMOR_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "braintumor"
    fmt = _fmt()
    ds = SliceDataset(fmt, fmt.records()[:2], 32, None, True)
    assert ds.cache_path is not None and ds.cache_path.parent == cache_root()


def test_in_memory_mode_pickling_and_transform(tmp_path: Path) -> None:
    fmt = _fmt()
    mem = SliceDataset(fmt, fmt.records(), 32, None, True, cache=False)
    cached = SliceDataset(fmt, fmt.records(), 32, None, True, cache_dir=tmp_path)
    torch.testing.assert_close(mem[2]["image"], cached[2]["image"])
    clone = pickle.loads(pickle.dumps(cached))  # what a DataLoader worker receives
    assert clone._images is None and len(pickle.dumps(cached)) < 50_000
    torch.testing.assert_close(clone[2]["mask"], cached[2]["mask"])

    def flip(item: dict[str, Any]) -> dict[str, Any]:
        return {**item, "image": item["image"].flip(-1)}

    flipped = SliceDataset(fmt, fmt.records(), 32, None, True, cache_dir=tmp_path, transform=flip)
    torch.testing.assert_close(flipped[0]["image"], cached[0]["image"].flip(-1))


def test_intensities_beyond_float16_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from braintumor.errors import DataError

    fmt = _fmt()
    original = fmt.load

    def raw(rec: Any) -> dict[str, Any]:
        sample = original(rec)
        sample["image"] = sample["image"] * 1e6  # e.g. unscaled 32-bit intensities
        return sample

    monkeypatch.setattr(fmt, "load", raw)
    with pytest.raises(DataError, match="float16"):
        SliceDataset(fmt, fmt.records()[:1], 32, None, False, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cache", [True, False])
def test_a_batch_fetched_at_once_equals_collated_items(tmp_path: Path, cache: bool) -> None:
    from torch.utils.data import DataLoader, default_collate

    from braintumor.data.dataset import collate

    fmt = _fmt(target="labels")
    ds = SliceDataset(fmt, fmt.records(), 32, None, False, cache_dir=tmp_path, cache=cache)
    order = [4, 0, 3]
    whole = next(iter(DataLoader(ds, batch_size=3, sampler=order, collate_fn=collate)))
    items = default_collate([ds[i] for i in order])
    assert whole.keys() == items.keys()
    for key, value in items.items():
        if isinstance(value, torch.Tensor):
            assert whole[key].dtype == value.dtype
            torch.testing.assert_close(whole[key], value, rtol=0, atol=0)
        else:
            assert list(whole[key]) == list(value)
