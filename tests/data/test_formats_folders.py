"""Class-folder formats: image-folder, brain-tumor-mri, busi (tiny files in the real layouts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from braintumor.data import create_format, list_formats
from braintumor.errors import DataError, UnknownNameError
from tests.data._writers import head_image, save_png


def _rgb(h: int = 20, w: int = 30) -> np.ndarray:
    return np.repeat(head_image(h, w)[..., None], 3, axis=-1)


def test_unknown_format_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError) as err:
        create_format("nope:/x")
    for name in ("brain-tumor-mri", "image-folder", "lgg", "brats", "brats-h5", "busi", "figshare"):
        assert name in str(err.value)
        assert list_formats()[name]  # every format has a one-line description


def test_image_folder_flat_layout_any_size_and_mode(tmp_path: Path) -> None:
    save_png(tmp_path / "yes" / "Y1.png", _rgb(40, 25))
    Image.fromarray(head_image(17, 33)).save(tmp_path / "yes" / "Y2.JPG")
    save_png(tmp_path / "no" / "1 no.png", head_image(10, 10))
    (tmp_path / "no" / "Thumbs.db").write_bytes(b"x")  # ignored: not an image
    (tmp_path / "__MACOSX").mkdir()  # zip debris: not a class
    (tmp_path / "empty").mkdir()  # a folder without images is no class
    fmt = create_format(f"image-folder:{tmp_path}")
    assert fmt.classes == ["no", "yes"] and fmt.natural_channels == 1
    recs = fmt.records()
    assert [(Path(r.path).name, r.label, r.split) for r in recs] == [
        ("1 no.png", 0, None),
        ("Y1.png", 1, None),
        ("Y2.JPG", 1, None),
    ]
    assert all(r.patient_id == r.path for r in recs)  # no patient ids: one image, one patient
    s = fmt.load(recs[1])
    assert s["image"].shape == (1, 40, 25) and s["mask"] is None and s["label"] == 1
    rgb = create_format(f"image-folder:{tmp_path}", gray=False)
    assert rgb.natural_channels == 3 and rgb.load(recs[0])["image"].shape == (3, 10, 10)


def test_image_folder_split_layout(tmp_path: Path) -> None:
    save_png(tmp_path / "train" / "a" / "1.png", head_image())
    save_png(tmp_path / "train" / "b" / "2.png", head_image())
    save_png(tmp_path / "test" / "b" / "3.png", head_image())
    recs = create_format(f"image-folder:{tmp_path}").records()
    got = sorted((Path(r.path).name, r.label, r.split) for r in recs)
    assert got == [("1.png", 0, "train"), ("2.png", 1, "train"), ("3.png", 1, "test")]
    save_png(tmp_path / "c" / "4.png", head_image())
    with pytest.raises(DataError, match="mixes split folders"):
        create_format(f"image-folder:{tmp_path}").records()


def _nickparvar(root: Path) -> Path:
    for split, n in (("Training", 2), ("Testing", 1)):
        for c in ("glioma", "meningioma", "notumor", "pituitary"):
            folder = root / split / c
            folder.mkdir(parents=True)
            for i in range(n):
                a = _rgb() if i == 0 else head_image(20, 30)  # mixed RGB / gray, as in the set
                Image.fromarray(a).save(folder / f"{split[:2]}-{c[:2]}_{i:04d}.jpg")
    return root


def test_brain_tumor_mri(tmp_path: Path) -> None:
    fmt = create_format(f"brain-tumor-mri:{_nickparvar(tmp_path)}")
    assert fmt.classes == ["glioma", "meningioma", "notumor", "pituitary"]
    recs = fmt.records()
    assert len(recs) == 12
    assert sum(r.split == "train" for r in recs) == 8 and sum(r.split == "test" for r in recs) == 4
    # byte-identical files (this fixture writes copies) share one patient id, others differ
    by_content: dict[bytes, set[str]] = {}
    for r in recs:
        by_content.setdefault(Path(r.path).read_bytes(), set()).add(r.patient_id)
    assert all(len(ids) == 1 for ids in by_content.values())
    assert len({r.patient_id for r in recs}) == len(by_content) < 12
    for r in recs[:2]:  # RGB and gray files both load as one channel
        s = fmt.load(r)
        assert s["image"].shape == (1, 20, 30) and s["image"].max() <= 1.0
    with pytest.raises(DataError, match="no Training/ or Testing/.*folder above it"):
        create_format(f"brain-tumor-mri:{tmp_path / 'Training'}").records()


@pytest.mark.parametrize("spec", ["image-folder", "brain-tumor-mri", "busi"])
def test_missing_and_empty_folders(tmp_path: Path, spec: str) -> None:
    with pytest.raises(DataError, match="does not exist"):
        create_format(f"{spec}:{tmp_path / 'missing'}")
    (tmp_path / "Training").mkdir()
    with pytest.raises(DataError, match=f"no samples found in {tmp_path}.*expected"):
        create_format(f"{spec}:{tmp_path}").records()


def test_corrupt_image_is_reported_on_load(tmp_path: Path) -> None:
    (tmp_path / "yes").mkdir()
    (tmp_path / "yes" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    fmt = create_format(f"image-folder:{tmp_path}")
    (rec,) = fmt.records()  # indexing stays cheap: no decoding
    with pytest.raises(DataError, match="bad.jpg.*cannot decode"):
        fmt.load(rec)


def _busi(root: Path) -> Path:
    base = root / "Dataset_BUSI_with_GT"
    img = head_image(24, 32)
    m1 = np.zeros((24, 32), np.uint8)
    m1[2:6, 2:6] = 255
    m2 = np.zeros((24, 32), np.uint8)
    m2[10:12, 20:25] = 255
    save_png(base / "benign" / "benign (1).png", np.repeat(img[..., None], 3, -1))
    save_png(base / "benign" / "benign (1)_mask.png", m1)
    save_png(base / "benign" / "benign (1)_mask_1.png", m2)  # a second lesion
    save_png(base / "benign" / "benign (10).png", img)
    save_png(base / "benign" / "benign (10)_mask.png", m2)
    save_png(base / "malignant" / "malignant (1).png", img)
    save_png(base / "malignant" / "malignant (1)_mask.png", m1)
    save_png(base / "normal" / "normal (1).png", img)
    save_png(base / "normal" / "normal (1)_mask.png", np.zeros_like(m1))
    return root


def test_busi_merges_masks(tmp_path: Path) -> None:
    fmt = create_format(f"busi:{_busi(tmp_path)}")
    assert fmt.classes == ["benign", "malignant", "normal"] and fmt.mask_channels == ["tumor"]
    recs = fmt.records()
    assert [(Path(r.path).name, r.label) for r in recs] == [
        ("benign (1).png", 0),
        ("benign (10).png", 0),
        ("malignant (1).png", 1),
        ("normal (1).png", 2),
    ]
    assert len(recs[0].extra["mask_paths"]) == 2 and len(recs[1].extra["mask_paths"]) == 1
    s = fmt.load(recs[0])
    assert s["image"].shape == (1, 24, 32) and s["mask"].shape == (1, 24, 32)
    assert s["mask"].sum() == 16 + 10  # both lesion files, merged by OR
    assert fmt.load(recs[3])["mask"].sum() == 0


def test_busi_errors(tmp_path: Path) -> None:
    _busi(tmp_path)
    base = tmp_path / "Dataset_BUSI_with_GT" / "benign"
    save_png(base / "benign (2)_mask.png", np.zeros((30, 30), np.uint8))
    save_png(base / "benign (2).png", head_image(24, 32))
    fmt = create_format(f"busi:{tmp_path}")
    rec = next(r for r in fmt.records() if r.path.endswith("benign (2).png"))
    with pytest.raises(DataError, match=r"mask .*benign \(2\)_mask.png is 30x30.*24x32"):
        fmt.load(rec)
    save_png(base / "benign (3).png", head_image(24, 32))
    with pytest.raises(DataError, match=r"benign \(3\).png has no mask"):
        create_format(f"busi:{tmp_path}").records()


def test_identical_files_stay_in_one_split(tmp_path: Path) -> None:
    from braintumor.data.splits import make_splits

    for c in ("no", "yes"):
        for i in range(10):
            save_png(tmp_path / c / f"{i}.png", head_image(16 + i, 16))
    (tmp_path / "yes" / "copy.png").write_bytes((tmp_path / "yes" / "3.png").read_bytes())
    recs = create_format(f"image-folder:{tmp_path}").records()
    pid = {Path(r.path).name: r.patient_id for r in recs if "yes" in r.path}
    assert pid["copy.png"] == pid["3.png"] != pid["4.png"]
    splits = make_splits(recs, 0.2, 0.2, seed=0)
    where = {r.path: name for name, rs in splits.items() for r in rs}
    assert where[str(tmp_path / "yes" / "copy.png")] == where[str(tmp_path / "yes" / "3.png")]
