"""BraTS formats: NIfTI cases (``brats``) and Kaggle slice files (``brats-h5``)."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest

from braintumor.data import create_format
from braintumor.data.formats import brats as brats_module
from braintumor.errors import ConfigError, DataError

X, Y, Z = 8, 6, 5  # brain in slices 1..3, tumor in slices 2..3


def _save(path: Path, data: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(data, np.diag([-1.0, -1.0, 1.0, 1.0])), path)


def _case(
    root: Path,
    name: str = "BraTS2021_00001",
    et: int = 4,
    names: dict | None = None,
    shapes: dict | None = None,
) -> Path:
    names = names or {"flair": "flair", "t1": "t1", "t1ce": "t1ce", "t2": "t2", "seg": "seg"}
    shapes = shapes or {}
    case = root / name
    case.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k, key in enumerate(("flair", "t1", "t1ce", "t2")):
        vol = np.zeros(shapes.get(key, (X, Y, Z)), np.float32)
        vol[1:7, 1:5, 1:4] = 100 + rng.normal(0, 5, (6, 4, 3))
        vol[k + 1, 1, 1:4] = 400  # a bright voxel whose x position identifies the sequence
        _save(case / f"{name}_{names[key]}.nii.gz", vol)
    seg = np.zeros((X, Y, Z), np.uint8)
    seg[2, 3, 2] = 1  # NCR at x=2, y=3
    seg[3, 3, 2] = 2  # ED
    seg[4, 2, 3] = et  # ET in the next slice
    _save(case / f"{name}_{names['seg']}.nii.gz", seg)
    return case


def test_brats_records_and_skip_empty(tmp_path: Path) -> None:
    _case(tmp_path, "BraTS2021_00001")
    _case(tmp_path, "BraTS2021_00002")
    counts = {}
    for skip in ("none", "brain", "tumor"):
        recs = create_format(f"brats:{tmp_path}", skip_empty=skip).records()
        counts[skip] = (len(recs), sum(r.label for r in recs))
    assert counts == {"none": (10, 4), "brain": (6, 4), "tumor": (4, 4)}
    recs = create_format(f"brats:{tmp_path}").records()  # default: skip slices without brain
    assert [r.extra["slice"] for r in recs[:3]] == [1, 2, 3]
    assert {r.patient_id for r in recs} == {"BraTS2021_00001", "BraTS2021_00002"}
    assert len({r.key for r in recs}) == 6  # path#slice keeps slices apart
    one = create_format(f"brats:{tmp_path / 'BraTS2021_00001'}").records()  # a single case
    assert len(one) == 3


def test_brats_load_channels_orientation_masks(tmp_path: Path) -> None:
    _case(tmp_path)
    fmt = create_format(f"brats:{tmp_path}")
    assert fmt.natural_channels == 4 and fmt.mask_channels == ["WT", "TC", "ET"]
    by_slice = {r.extra["slice"]: r for r in fmt.records()}
    s = fmt.load(by_slice[2])
    assert s["image"].shape == (4, Y, X) and s["mask"].shape == (3, Y, X)  # H x W = vol.T
    # channel order flair, t1, t1ce, t2: sequence k has its bright voxel at x = k + 1
    assert [int(np.argmax(s["image"][k, 1])) for k in range(4)] == [1, 2, 3, 4]
    assert (s["image"][:, 0] == 0).all()  # background stays 0 after z-scoring
    wt, tc, et = s["mask"]
    assert wt[3, 2] and wt[3, 3] and tc[3, 2] and not tc[3, 3] and et.sum() == 0
    s3 = fmt.load(by_slice[3])
    assert s3["mask"][:, 2, 4].tolist() == [1, 1, 1] and s3["label"] == 1
    labels = create_format(f"brats:{tmp_path}", target="labels")
    assert labels.mask_channels == ["NCR", "ED", "ET"]
    ncr, ed, et = labels.load(by_slice[2])["mask"]
    assert ncr[3, 2] and not ncr[3, 3] and ed[3, 3] and et.sum() == 0


def test_brats_2023_names_and_label_convention(tmp_path: Path) -> None:
    names = {"flair": "t2f", "t1": "t1n", "t1ce": "t1c", "t2": "t2w", "seg": "seg"}
    _case(tmp_path, "BraTS-GLI-00000-000", et=3, names=names)
    with pytest.raises(DataError, match=r"label\(s\) \[3\].*label_convention=2023"):
        create_format(f"brats:{tmp_path}").records()
    fmt = create_format(f"brats:{tmp_path}", label_convention="2023")
    rec = next(r for r in fmt.records() if r.extra["slice"] == 3)
    assert fmt.load(rec)["mask"][2, 2, 4] == 1  # ET = label 3


def test_brats_volume_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _case(tmp_path)
    fmt = create_format(f"brats:{tmp_path}")
    recs = fmt.records()
    calls: list[str] = []
    real = brats_module.read_volume

    def counting(path):  # type: ignore[no-untyped-def]
        calls.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(brats_module, "read_volume", counting)
    assert len(create_format(f"brats:{tmp_path}").records()) == 3  # indexed from disk cache
    assert calls == []
    for r in recs:
        fmt.load(r)
    assert len(calls) == 5  # four sequences + seg, decoded once for all slices
    clone = pickle.loads(pickle.dumps(fmt))
    assert not clone._volumes and fmt._volumes  # workers do not receive decoded volumes


def test_brats_bad_input(tmp_path: Path) -> None:
    _case(tmp_path / "a", shapes={"t1": (X, Y, Z + 1)})
    fmt = create_format(f"brats:{tmp_path / 'a'}")
    with pytest.raises(DataError, match=r"BraTS2021_00001_t1.nii.gz is \(8, 6, 6\).*same shape"):
        fmt.load(fmt.records()[0])
    _case(tmp_path / "b", shapes={"flair": (X, Y, Z + 1)})
    with pytest.raises(DataError, match="seg.nii.gz is .*flair.nii.gz is"):
        create_format(f"brats:{tmp_path / 'b'}").records()
    case = _case(tmp_path / "c")
    (case / "BraTS2021_00001_t1ce.nii.gz").unlink()
    with pytest.raises(DataError, match="has no t1ce file"):
        create_format(f"brats:{tmp_path / 'c'}").records()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no samples found in .*empty; expected"):
        create_format(f"brats:{tmp_path / 'empty'}").records()
    with pytest.raises(ConfigError, match="skip_empty"):
        create_format(f"brats:{tmp_path / 'a'}", skip_empty="some")
    with pytest.raises(DataError, match="no option 'modality'"):
        create_format(f"brats:{tmp_path / 'a'}", modality="t1")


# --- brats-h5: the Kaggle BraTS2020 slice files ----------------------------------------


def _h5_set(root: Path, volumes: int = 2, slices: int = 3) -> Path:
    data = root / "BraTS2020_training_data" / "content" / "data"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for v in range(1, volumes + 1):
        for s in range(slices):
            image = np.zeros((12, 12, 4))
            image[2:10, 2:10] = rng.normal(3.0 * (1 + np.arange(4)), 1.0, (8, 8, 4))
            mask = np.zeros((12, 12, 3), np.uint8)
            if s == 1:
                mask[5, 6, 2] = 1  # ET only
            with h5py.File(data / f"volume_{v}_slice_{s}.h5", "w") as f:
                f["image"] = image
                f["mask"] = mask
    return root


def test_brats_h5_records_and_load(tmp_path: Path) -> None:
    fmt = create_format(f"brats-h5:{_h5_set(tmp_path, volumes=10)}")
    assert fmt.mask_channels == ["NCR", "ED", "ET"] and fmt.natural_channels == 4
    recs = fmt.records()
    assert len(recs) == 30 and sum(r.label for r in recs) == 10
    assert [r.patient_id for r in recs[:4]] == ["1", "1", "1", "2"]  # numeric volume order
    assert recs[-1].patient_id == "10"
    s = fmt.load(recs[1])
    assert s["image"].shape == (4, 12, 12) and s["mask"].shape == (3, 12, 12)
    assert s["mask"][:, 5, 6].tolist() == [0, 0, 1]
    # z-scored per volume inside the brain: channel means over all slices of volume 1 ~ 0
    stack = np.stack([fmt.load(r)["image"] for r in recs[:3]])
    brain = stack != 0
    for c in range(4):
        assert abs(stack[:, c][brain[:, c]].mean()) < 1e-5
    raw = create_format(f"brats-h5:{tmp_path}", normalize="none").load(recs[1])["image"]
    assert raw[3, 5, 5] > 6  # stored values kept
    tumor = create_format(f"brats-h5:{tmp_path}", skip_empty="tumor").records()
    assert len(tumor) == 10 and all(r.label == 1 for r in tumor)


def test_brats_h5_bad_input(tmp_path: Path) -> None:
    data = _h5_set(tmp_path, volumes=1) / "BraTS2020_training_data" / "content" / "data"
    (data / "volume_1_slice_1.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    with pytest.raises(DataError, match="volume_1_slice_1.h5: cannot read HDF5"):
        create_format(f"brats-h5:{tmp_path}").records()
    with h5py.File(data / "volume_1_slice_1.h5", "w") as f:
        f["image"] = np.zeros((12, 12, 3))
        f["mask"] = np.zeros((12, 12, 3), np.uint8)
    fmt = create_format(f"brats-h5:{tmp_path}", normalize="none")
    with pytest.raises(DataError, match=r"image has shape \(12, 12, 3\); expected H x W x 4"):
        fmt.load(fmt.records()[1])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no samples found"):
        create_format(f"brats-h5:{tmp_path / 'empty'}").records()
