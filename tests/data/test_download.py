"""download() with fake clients: layout, counts, atomic replace, clear errors (no network)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from braintumor.data.download import DOWNLOADS, KnownDataset, check_counts, download
from braintumor.errors import DataError, UnknownNameError


class FakeKaggle:
    """Writes a tiny archive layout like the real Kaggle zips (with wrapper folders)."""

    def __init__(self, layout: dict[str, bytes] | None = None) -> None:
        self.layout = layout or {
            "brain-tumor-mri-dataset/Training/glioma/Tr-gl_0001.jpg": b"a",
            "brain-tumor-mri-dataset/Training/notumor/Tr-no_0001.jpg": b"b",
            "brain-tumor-mri-dataset/Testing/glioma/Te-gl_0001.jpg": b"c",
            "README.txt": b"wrapper file that must not end up in the target",
        }
        self.calls: list[str] = []

    def download(self, slug: str, dest: Path) -> None:
        self.calls.append(slug)
        for rel, data in self.layout.items():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(data)


class Offline:
    def download(self, slug: str, dest: Path) -> None:
        (dest / "partial.zip").write_bytes(b"half")  # what a broken transfer leaves
        raise OSError("[Errno -3] Temporary failure in name resolution")


def test_brain_tumor_mri_layout_and_spec(tmp_path: Path) -> None:
    fake = FakeKaggle()
    res = download("brain-tumor-mri", tmp_path / "btm", client=fake)
    assert fake.calls == ["masoudnickparvar/brain-tumor-mri-dataset"]
    target = tmp_path / "btm"
    assert sorted(p.name for p in target.iterdir()) == ["Testing", "Training"]
    assert (target / "Training" / "glioma" / "Tr-gl_0001.jpg").read_bytes() == b"a"
    assert res.spec == f"brain-tumor-mri:{target}"
    assert res.counts == {"Training/*/*.jpg": 2, "Testing/*/*.jpg": 1}
    assert len(res.warnings) == 2 and "expected 5712" in res.warnings[0]
    assert [p.name for p in tmp_path.iterdir()] == ["btm"]  # no temp folder left over


def test_lgg_keeps_kaggle_3m_and_client_factory(tmp_path: Path) -> None:
    layout = {
        "lgg-mri-segmentation/kaggle_3m/TCGA_CS_1_2000/TCGA_CS_1_2000_1.tif": b"i",
        "lgg-mri-segmentation/kaggle_3m/TCGA_CS_1_2000/TCGA_CS_1_2000_1_mask.tif": b"m",
    }
    res = download("lgg", tmp_path / "lgg", client=lambda: FakeKaggle(layout))
    assert res.spec == f"lgg:{tmp_path / 'lgg' / 'kaggle_3m'}"
    assert (tmp_path / "lgg/kaggle_3m/TCGA_CS_1_2000/TCGA_CS_1_2000_1_mask.tif").exists()
    assert res.counts == {"kaggle_3m/TCGA_*/*_mask.tif": 1, "kaggle_3m/TCGA_*": 1}


def test_brats_h5_flattens_slice_files(tmp_path: Path) -> None:
    layout = {f"BraTS2020_training_data/content/data/volume_1_slice_{i}.h5": b"h" for i in range(3)}
    layout["BraTS2020_training_data/content/data/meta_data.csv"] = b"x"
    res = download("brats2020-h5", tmp_path / "b", client=FakeKaggle(layout))
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        f"volume_1_slice_{i}.h5" for i in range(3)
    ]
    assert res.spec.startswith("brats-h5:")


def test_unknown_name_lists_valid_names(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="brain-tumor-mri.*lgg.*navoneel"):
        download("brats", tmp_path / "x", client=FakeKaggle())


def test_offline_gives_manual_steps_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        download("navoneel", tmp_path / "nav", client=Offline())
    msg = str(err.value)
    assert "\n" not in msg and "Temporary failure" in msg
    assert (
        "https://www.kaggle.com/datasets/navoneel/brain-mri-images-for-brain-tumor-detection" in msg
    )
    assert f"{tmp_path / 'nav'}/yes" in msg
    assert list(tmp_path.iterdir()) == []


def test_missing_kaggle_package_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kaggle", None)  # import kaggle -> ImportError
    with pytest.raises(DataError, match=r"pip install 'braintumor\[kaggle\]'.*Training/<class>"):
        download("brain-tumor-mri", tmp_path / "btm")
    assert list(tmp_path.iterdir()) == []


def test_refuses_non_empty_target_then_force_replaces(tmp_path: Path) -> None:
    target = tmp_path / "btm"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    with pytest.raises(DataError, match="not empty.*--force"):
        download("brain-tumor-mri", target, client=FakeKaggle())
    assert (target / "mine.txt").read_text() == "keep me"
    # A failed forced download must not destroy the existing data either.
    with pytest.raises(DataError):
        download("brain-tumor-mri", target, force=True, client=Offline())
    assert (target / "mine.txt").read_text() == "keep me"
    download("brain-tumor-mri", target, force=True, client=FakeKaggle())
    assert not (target / "mine.txt").exists() and (target / "Training").is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["btm"]


def test_wrong_archive_layout_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="expected layout"):
        download("busi", tmp_path / "busi", client=FakeKaggle({"x/benign/a.png": b"1"}))
    assert list(tmp_path.iterdir()) == []


def test_check_counts_error_when_nothing_matches(tmp_path: Path) -> None:
    ds = DOWNLOADS.get("navoneel")
    assert isinstance(ds, KnownDataset)
    with pytest.raises(DataError, match="none of the expected files"):
        check_counts(ds, tmp_path)
    (tmp_path / "yes").mkdir()
    for i in range(155):
        (tmp_path / "yes" / f"Y{i}.jpg").write_bytes(b"")
    counts, warnings = check_counts(ds, tmp_path)
    assert counts == {"yes/*": 155, "no/*": 0}
    assert len(warnings) == 1 and warnings[0].startswith("no/*: found 0 files, expected 98")
