"""The LGG (kaggle_3m) format on tiny TIFFs written in the original layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from braintumor.data import create_format
from braintumor.errors import DataError

CSV = """Patient,RNASeqCluster,gender,age_at_initial_pathologic,ethnicity,death01
TCGA_CS_4942,1,1,44,,1
TCGA_DU_7010,2,2,37.5,,0
"""


def _case(base: Path, folder: str, tumor_slices: set[int], n: int = 3, size: int = 16) -> None:
    case = base / folder
    case.mkdir(parents=True)
    for i in range(1, n + 1):
        img = np.full((size, size, 3), 20 * i, np.uint8)  # 3 channels, as in the set
        mask = np.zeros((size, size), np.uint8)
        if i in tumor_slices:
            mask[4:8, 4:8] = 255
        tifffile.imwrite(case / f"{folder}_{i}.tif", img)
        tifffile.imwrite(case / f"{folder}_{i}_mask.tif", mask)


def _lgg(root: Path) -> Path:
    base = root / "kaggle_3m"
    _case(base, "TCGA_CS_4942_19970222", {2})
    _case(base, "TCGA_DU_7010_19860307", {2, 3}, n=12)  # slice 10 must sort after 9
    (base / "data.csv").write_text(CSV)
    (base / "README.md").write_text("readme")
    return root


def test_lgg_records_labels_patients_clinical(tmp_path: Path) -> None:
    fmt = create_format(f"lgg:{_lgg(tmp_path)}")  # the parent of kaggle_3m
    assert fmt.classes == ["no_tumor", "tumor"] and fmt.mask_channels == ["tumor"]
    assert fmt.natural_channels == 3 and set(fmt.tasks) == {"classification", "segmentation"}
    recs = fmt.records()
    assert len(recs) == 15 and sum(r.label for r in recs) == 3
    assert {r.patient_id for r in recs} == {"TCGA_CS_4942", "TCGA_DU_7010"}
    second = [r.extra["slice_number"] for r in recs if r.patient_id == "TCGA_DU_7010"]
    assert second == list(range(1, 13))
    clin = recs[0].extra["clinical"]
    assert clin["age_at_initial_pathologic"] == 44 and clin["ethnicity"] is None
    assert recs[-1].extra["clinical"]["age_at_initial_pathologic"] == 37.5
    same = create_format(f"lgg:{tmp_path / 'kaggle_3m'}").records()  # kaggle_3m itself
    assert [r.path for r in same] == [r.path for r in recs]


def test_lgg_load(tmp_path: Path) -> None:
    fmt = create_format(f"lgg:{_lgg(tmp_path)}")
    rec = fmt.records()[1]
    s = fmt.load(rec)
    assert s["image"].shape == (3, 16, 16) and s["image"].dtype == np.float32
    np.testing.assert_allclose(s["image"], 40 / 255, atol=1e-6)
    assert s["mask"].shape == (1, 16, 16) and s["mask"].sum() == 16 and s["label"] == 1
    assert s["patient_id"] == "TCGA_CS_4942"


def test_lgg_bad_input(tmp_path: Path) -> None:
    _lgg(tmp_path)
    case = tmp_path / "kaggle_3m" / "TCGA_CS_4942_19970222"
    tifffile.imwrite(case / "TCGA_CS_4942_19970222_1_mask.tif", np.zeros((8, 8), np.uint8))
    fmt = create_format(f"lgg:{tmp_path}")
    with pytest.raises(DataError, match="_1_mask.tif is 8x8 but its image .*_1.tif is 16x16"):
        fmt.load(fmt.records()[0])
    (case / "TCGA_CS_4942_19970222_3_mask.tif").unlink()
    with pytest.raises(DataError, match="_3.tif has no mask"):
        create_format(f"lgg:{tmp_path}").records()


def test_lgg_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "kaggle_3m").mkdir()
    with pytest.raises(DataError, match="no samples found in .*kaggle_3m; expected"):
        create_format(f"lgg:{tmp_path}").records()
