"""The Figshare (Cheng et al.) format on tiny MATLAB v7.3 files written with h5py."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from braintumor.data import create_format
from braintumor.errors import DataError


def _mat(path: Path, label: int, pid: str, image: np.ndarray, mask: np.ndarray) -> Path:
    """Write ``path`` the way MATLAB's ``save -v7.3`` does: HDF5 after a 512-byte
    header, column-major arrays (so stored transposed), chars as uint16 code units."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as f:
        g = f.create_group("cjdata")
        g["image"] = image.T.astype(np.int16)
        g["label"] = np.array([[float(label)]])
        g["PID"] = np.array([[ord(c)] for c in pid], dtype=np.uint16)
        g["PID"].attrs["MATLAB_class"] = np.bytes_(b"char")
        g["tumorMask"] = mask.T.astype(np.uint8)
        g["tumorBorder"] = np.zeros((1, 4))
    with path.open("r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan 1 2015".ljust(116))
    return path


def _figshare(root: Path) -> Path:
    image = np.zeros((30, 40), np.int16)
    image[5:25, 10:30] = np.arange(400).reshape(20, 20) * 10  # 12-bit-like values
    image[0, 9] = 30000  # a hot pixel that robust scaling clips
    mask = np.zeros((30, 40), np.uint8)
    mask[2, 7] = 1  # asymmetric, so a missing transpose shows
    for n, (label, pid) in enumerate([(1, "100360"), (2, "100360"), (3, "MR040"), (2, "7")], 1):
        _mat(root / "brainTumorDataPublic_1-766" / f"{n}.mat", label, pid, image, mask)
    (root / "cvind.mat").write_bytes(b"MATLAB 5.0 MAT-file")  # fold indices: not a sample
    return root


def test_figshare_records_and_load(tmp_path: Path) -> None:
    fmt = create_format(f"figshare:{_figshare(tmp_path)}")
    assert fmt.classes == ["meningioma", "glioma", "pituitary"]
    recs = fmt.records()
    assert [(Path(r.path).name, r.label, r.patient_id) for r in recs] == [
        ("1.mat", 0, "100360"),
        ("2.mat", 1, "100360"),
        ("3.mat", 2, "MR040"),
        ("4.mat", 1, "7"),
    ]
    s = fmt.load(recs[0])
    assert s["image"].shape == (1, 30, 40) and s["mask"].shape == (1, 30, 40)
    assert s["mask"][0, 2, 7] == 1 and s["mask"].sum() == 1
    img = s["image"][0]
    assert img.min() == 0 and img.max() == 1 and img[0, 9] == 1  # hot pixel clipped to 1
    assert img[24, 29] > 0.9  # the brightest tissue is not crushed by the hot pixel


def test_figshare_bad_input(tmp_path: Path) -> None:
    _figshare(tmp_path)
    bad = tmp_path / "brainTumorDataPublic_1-766" / "5.mat"
    bad.write_bytes(b"MATLAB 5.0 MAT-file, not HDF5")
    with pytest.raises(DataError, match="5.mat: cannot read as MATLAB v7.3"):
        create_format(f"figshare:{tmp_path}").records()
    with h5py.File(bad, "w") as f:
        f["other"] = np.zeros(2)
    with pytest.raises(DataError, match="5.mat has no 'cjdata'"):
        create_format(f"figshare:{tmp_path}").records()
    _mat(bad, 4, "1", np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(DataError, match="5.mat: cjdata.label is 4"):
        create_format(f"figshare:{tmp_path}").records()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no samples found"):
        create_format(f"figshare:{tmp_path / 'empty'}").records()
