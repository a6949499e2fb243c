"""inspect_dataset on tiny sets with planted exact and near duplicates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from braintumor.data.audit import close_pairs, inspect_dataset, phash, save_preview_grid
from braintumor.data.base import DatasetFormat, Record
from braintumor.errors import DataError

SPLIT_DIRS = {"Training": "train", "Testing": "test"}


class FakeFolder(DatasetFormat):
    """``root/{Training,Testing}/<class>/*.png``: a stand-in for the real folder formats."""

    name = "audit-fake-folder"
    description = "test-only folder format"

    @property
    def classes(self) -> list[str]:
        return sorted({p.name for p in self.root.glob("*/*") if p.is_dir()})

    def records(self) -> list[Record]:
        recs = []
        for f in sorted(self.root.glob("*/*/*.png")):
            split_dir, cls = f.parent.parent.name, f.parent.name
            recs.append(
                Record(str(f), f.stem, self.classes.index(cls), split=SPLIT_DIRS[split_dir])
            )
        return self._nonempty(recs, self.root, "Training/<class>/*.png")

    def load(self, rec: Record) -> dict[str, Any]:
        image = np.asarray(Image.open(rec.path).convert("L"), dtype=np.float32) / 255
        return self._sample(rec, image, None)


class FakeVolumes(DatasetFormat):
    """``root/<patient>.npy`` (S x H x W); mask = pixels > 0.8; patient p0 is train."""

    name = "audit-fake-volumes"
    description = "test-only volume format"

    @property
    def classes(self) -> list[str]:
        return []

    @property
    def mask_channels(self) -> list[str]:
        return ["tumor"]

    def records(self) -> list[Record]:
        recs = []
        for f in sorted(self.root.glob("*.npy")):
            split = "train" if f.stem == "p0" else "test"
            for s in range(np.load(f, mmap_mode="r").shape[0]):
                recs.append(Record(str(f), f.stem, split=split, extra={"slice": s}))
        return recs

    def load(self, rec: Record) -> dict[str, Any]:
        plane = np.load(rec.path)[rec.extra["slice"]]
        return self._sample(rec, plane, (plane > 0.8).astype(np.uint8))


class FakeH5Slices(DatasetFormat):
    """``root/<patient>_<n>.h5`` with an ``image`` dataset: one file per slice, not a picture."""

    name = "audit-fake-h5"
    description = "test-only HDF5 slice format"

    @property
    def classes(self) -> list[str]:
        return []

    def records(self) -> list[Record]:
        return [Record(str(f), f.stem.split("_")[0]) for f in sorted(self.root.glob("*.h5"))]

    def load(self, rec: Record) -> dict[str, Any]:
        import h5py

        with h5py.File(rec.path, "r") as f:
            return self._sample(rec, np.asarray(f["image"]), None)


def smooth_image(seed: int, size: int = 64) -> np.ndarray:
    """A smooth random uint8 image (upsampled 8x8 noise): MRI-like low frequencies."""
    small = np.random.default_rng(seed).integers(0, 256, (8, 8), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC))


def make_planted_set(root: Path) -> Path:
    """Training/Testing with known duplicates; the expected counts are in the tests."""

    def put(rel: str, seed: int, tweak: bool = False) -> Path:
        arr = smooth_image(seed)
        if tweak:  # a near-duplicate: a few pixels slightly changed
            arr = arr.copy()
            arr[10:13, 20:23] = np.clip(arr[10:13, 20:23].astype(int) + 6, 0, 255)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path)
        return path

    def copy(src: Path, rel: str) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, root / rel)

    a0 = put("Training/a/a0.png", 0)
    copy(a0, "Training/a/a0_copy1.png")  # within train: group of 3 -> 2 extra
    copy(a0, "Training/a/a0_copy2.png")
    a1 = put("Training/a/a1.png", 1)
    put("Training/a/a2.png", 2)
    put("Training/b/a2_near.png", 2, tweak=True)  # near within train: 1
    b3 = put("Training/b/b3.png", 3)
    copy(b3, "Training/b/b3_copy.png")  # within train: +1 -> 3
    put("Training/b/b4.png", 4)
    put("Testing/a/t5.png", 5)
    copy(a1, "Testing/a/t_a1.png")  # across: 1
    put("Testing/b/t6.png", 6)
    copy(b3, "Testing/b/t_b3.png")  # across: 2
    copy(b3, "Testing/b/t_b3_again.png")  # across: 3, within test: 1
    put("Testing/b/t_b4_near.png", 4, tweak=True)  # near across: 1
    return root


@pytest.fixture
def planted(tmp_path: Path) -> FakeFolder:
    return FakeFolder(make_planted_set(tmp_path / "set"))


def test_counts_and_splits(planted: FakeFolder) -> None:
    s = inspect_dataset(planted, progress=False)
    assert s["n_samples"] == 15 and s["n_patients"] == 15
    assert s["split_source"] == "official"
    assert s["splits"] == {"train": 9, "test": 6}
    assert s["classes"] == {"a": 7, "b": 8}
    assert s["per_split_class"] == {"train": {"a": 5, "b": 4}, "test": {"a": 2, "b": 4}}
    assert s["image_sizes"]["most_common"] == [["64x64", 15]]
    assert s["modes"] == {"L": 15}
    # "a"/"b" are not no-tumor names, so every labelled sample counts as tumor.
    assert s["n_with_tumor"] == 15 and s["tumor_fraction"] == 1.0
    json.dumps(s)  # JSON-able


def test_exact_duplicates_within_and_across(planted: FakeFolder) -> None:
    s = inspect_dataset(planted, progress=False, near_duplicates=False)
    assert s["duplicates_within"] == {"train": 3, "test": 1, "total": 4}
    assert s["duplicates_across_splits"] == {"test": 3, "total": 3}
    assert "near_duplicates_within" not in s
    assert any(w.startswith("3 test files are byte-identical to train") for w in s["warnings"])
    ex = s["duplicate_examples"]["across"][0]
    assert (ex["split"], ex["earlier_split"]) == ("test", "train")
    assert "Testing" in ex["file"] and "Training" in ex["earlier_file"]
    assert {e["split"] for e in s["duplicate_examples"]["within"]} == {"train", "test"}


def test_near_duplicates(planted: FakeFolder) -> None:
    s = inspect_dataset(planted, progress=False)
    assert s["near_duplicates_within"] == {"train": 1, "test": 0, "total": 1}
    assert s["near_duplicates_across_splits"] == {"test": 1, "total": 1}
    ex = s["near_duplicate_examples"]
    assert [Path(e["b"]).name for e in ex] == ["t_b4_near.png", "a2_near.png"]  # across first
    assert [(e["a_split"], e["b_split"]) for e in ex] == [("train", "test"), ("train", "train")]


def test_volume_slices_hash_decoded_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vol = rng.random((5, 16, 16)).astype(np.float32)
    vol[0] = 0  # blank slices: excluded from the duplicate counts
    vol[4] = 0
    vol[3] = vol[1]  # an identical slice within p0
    np.save(tmp_path / "p0.npy", vol)
    other = rng.random((2, 16, 16)).astype(np.float32)
    other[1] = vol[2]  # p1 (test) repeats a training slice
    np.save(tmp_path / "p1.npy", other)
    s = inspect_dataset(FakeVolumes(tmp_path), progress=False)
    assert s["n_samples"] == 7 and s["n_patients"] == 2
    assert s["n_blank"] == 2
    assert s["exact_method"] == "array"
    assert s["duplicates_within"] == {"train": 1, "test": 0, "total": 1}
    assert s["duplicates_across_splits"] == {"test": 1, "total": 1}
    assert s["image_sizes"]["most_common"] == [["16x16", 7]]
    assert s["n_with_tumor"] == 5 and s["tumor_source"] == "mask"


def test_single_files_pillow_cannot_read(tmp_path: Path) -> None:
    import h5py

    def write(name: str, image: np.ndarray) -> None:
        with h5py.File(tmp_path / name, "w") as f:
            f["image"] = image

    rng = np.random.default_rng(0)
    write("p0_0.h5", np.zeros((20, 24), np.float32))  # blank
    write("p0_1.h5", rng.random((20, 24)).astype(np.float32))
    write("p1_0.h5", rng.random((20, 24)).astype(np.float32))
    shutil.copyfile(tmp_path / "p0_1.h5", tmp_path / "p1_1.h5")  # byte-identical copy
    s = inspect_dataset(FakeH5Slices(tmp_path), progress=False)
    assert s["image_sizes"]["most_common"] == [["20x24", 4]] and s["modes"] == {}
    assert s["exact_method"] == "file" and s["n_blank"] == 1 and s["n_unreadable"] == 0
    assert s["split_source"].startswith("none")  # 2 patients cannot make 3 splits
    assert s["duplicates_within"] == {"train": 1, "total": 1}


def test_unreadable_file_is_reported_not_fatal(planted: FakeFolder) -> None:
    bad = planted.root / "Training" / "a" / "zz_broken.png"
    bad.write_bytes(b"not a png")
    s = inspect_dataset(planted, progress=False)
    assert s["n_unreadable"] == 1
    assert s["unreadable_examples"][0][0].endswith("zz_broken.png")
    assert any("could not be read" in w for w in s["warnings"])


def test_nothing_readable_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "Training" / "a").mkdir(parents=True)
    (tmp_path / "Training" / "a" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="none of the 1 samples could be read"):
        inspect_dataset(FakeFolder(tmp_path), progress=False)


def test_close_pairs_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    hashes = rng.integers(0, 2**63, 300, dtype=np.int64).astype(np.uint64)
    hashes[7] = hashes[3] ^ np.uint64(0b101)  # distance 2
    got = [tuple(p) for p in close_pairs(hashes, 8, chunk=64).tolist()]
    want = [
        (i, j, bin(int(hashes[i]) ^ int(hashes[j])).count("1"))
        for i in range(300)
        for j in range(i + 1, 300)
        if bin(int(hashes[i]) ^ int(hashes[j])).count("1") <= 8
    ]
    assert sorted(got) == want and (3, 7, 2) in got


def test_phash_stable_under_small_change_not_across_images() -> None:
    a = smooth_image(0, 32)[None].astype(np.float64)
    b = a.copy()
    b[0, 5:7, 5:7] += 5
    c = smooth_image(1, 32)[None]
    ha, hb, hc = phash(np.concatenate([a, b, c]))
    assert bin(int(ha ^ hb)).count("1") <= 2
    assert bin(int(ha ^ hc)).count("1") > 10


def test_preview_grid_png(planted: FakeFolder, tmp_path: Path) -> None:
    out = save_preview_grid(planted, planted.records(), tmp_path / "p" / "grid.png", n=4)
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width > 100


def test_preview_grid_with_masks(tmp_path: Path) -> None:
    np.save(tmp_path / "p0.npy", np.random.default_rng(0).random((3, 16, 16)).astype(np.float32))
    fmt = FakeVolumes(tmp_path)
    out = save_preview_grid(fmt, fmt.records(), tmp_path / "grid.png", n=16)
    assert out.stat().st_size > 1000


# --- real data (skipped when ../shared/datasets is absent) ---------------------------
@pytest.mark.slow
@pytest.mark.realdata
def test_real_lgg_counts() -> None:
    from braintumor.data import create_format
    from tests.conftest import shared_subdir

    fmt = create_format(f"lgg:{shared_subdir('lgg-mri-segmentation/kaggle_3m')}")
    s = inspect_dataset(fmt, progress=False, near_duplicates=False)
    assert (s["n_samples"], s["n_patients"], s["n_with_tumor"]) == (1716, 46, 582)
    assert s["patients_in_several_splits"] == 0 and s["duplicates_across_splits"]["total"] == 0
    assert s["image_sizes"]["most_common"] == [["256x256", 1716]] and s["modes"] == {"RGB": 1716}


@pytest.mark.slow
@pytest.mark.realdata
def test_real_brats_sample_slices() -> None:
    from braintumor.data import create_format
    from tests.conftest import shared_subdir

    fmt = create_format(f"brats:{shared_subdir('brats2021-sample')}", skip_empty="none")
    s = inspect_dataset(fmt, progress=False, near_duplicates=False)
    assert (s["n_samples"], s["n_patients"], s["n_with_tumor"]) == (155, 1, 68)
    assert s["channels"] == 4 and s["image_sizes"]["most_common"] == [["240x240", 155]]
    assert s["exact_method"] == "array" and s["split_source"].startswith("none")


@pytest.mark.realdata
def test_real_navoneel_image_folder() -> None:
    from braintumor.data import create_format
    from tests.conftest import shared_subdir

    fmt = create_format(f"image-folder:{shared_subdir('brain-mri-detection')}")
    s = inspect_dataset(fmt, progress=False)
    assert s["n_samples"] == 253 and s["classes"] == {"no": 98, "yes": 155}
    assert s["image_sizes"]["n_distinct"] > 100  # "wildly varying sizes"
    assert s["duplicates_within"]["total"] + s["duplicates_across_splits"]["total"] > 0
