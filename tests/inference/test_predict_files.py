"""``predict`` reads what ``pipeline`` reads: DICOM series, BraTS case folders, C NIfTI
files per case; and it scales every scan to the run's intensity."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from braintumor.data.intensity import zscore_brain
from braintumor.data.io import write_nifti
from braintumor.errors import DataError
from braintumor.inference.predict_files import predict_inputs
from braintumor.inference.predictor import Predictor
from braintumor.inference.scans import load_input
from tests.data._writers import save_dicom
from tests.inference._cards import card_for

SEQUENCES = ["flair", "t1", "t1ce", "t2"]


class _Bright(nn.Module):
    """A segmenter: tumour where the first channel is above zero (z-scored: above mean)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 50.0 * x[:, :1]


class _Mean(nn.Module):
    """A classifier whose logits are +/- the image mean: records the scale it was given."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([-m, m], dim=1)


def _predictor(model: nn.Module, task: str, channels: int, intensity: str) -> Predictor:
    card = card_for(task, "x", channels, 2 if task == "classification" else 1, 16)
    card["normalisation"] = {"intensity": intensity}
    return Predictor(model, card, device="cpu")


def _brats_case(folder: Path) -> list[Path]:
    rng = np.random.default_rng(3)
    folder.mkdir()
    files = []
    for name in SEQUENCES:
        vol = np.zeros((12, 10, 3), np.float32)
        vol[2:10, 2:8] = rng.random((8, 6, 3)) * 500 + 100  # a "brain" on a zero background
        files.append(write_nifti(folder / f"{folder.name}_{name}.nii.gz", vol, np.eye(4)))
    return files


def test_brats_folder_and_its_four_nifti_files_give_the_same_mask(tmp_path: Path) -> None:
    files = _brats_case(tmp_path / "Case_001")
    pred = _predictor(_Bright(), "segmentation", 4, "zscore")
    rows = predict_inputs(pred, [tmp_path / "Case_001"], tmp_path / "a")
    rows += predict_inputs(pred, files, tmp_path / "b")  # flair, t1, t1ce, t2
    a = np.asarray(nib.load(rows[0]["mask"]).dataobj)
    b = np.asarray(nib.load(rows[1]["mask"]).dataobj)
    assert a.shape == (12, 10, 3) and 0 < a.sum() < a.size
    np.testing.assert_array_equal(a, b)
    assert rows[1]["input"] == ", ".join(str(f) for f in files)
    assert rows[0]["volume_ml"]["c0"] == pytest.approx(a.sum() / 1000)  # 1 mm voxels
    with pytest.raises(DataError, match="4 NIfTI files per case"):
        predict_inputs(pred, files[:3], tmp_path / "c")


def test_dicom_series_folder_is_segmented_in_its_own_grid(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    for z in range(3):
        plane = rng.integers(0, 3000, (14, 9)).astype(np.uint16)
        save_dicom(tmp_path / "series" / f"{z}.dcm", plane, position=(0, 0, 2.0 * z), instance=z)
    pred = _predictor(_Bright(), "segmentation", 1, "zscore")
    (row,) = predict_inputs(pred, [tmp_path / "series"], tmp_path / "out")
    mask = nib.load(row["mask"])
    assert mask.shape == (9, 14, 3)  # X = columns, Y = rows, Z = slices
    scan = load_input(tmp_path / "series")
    np.testing.assert_allclose(mask.affine, scan.affine)
    # Voxel: 0.5 x 0.7 mm pixels, 2 mm between slice positions.
    assert row["volume_ml"]["c0"] == pytest.approx(row["pixels"]["c0"] * 0.5 * 0.7 * 2 / 1000)


def test_one_sequence_for_a_four_channel_run_names_the_fix(tmp_path: Path) -> None:
    vol = tmp_path / "flair.nii.gz"
    write_nifti(vol, np.ones((6, 6, 2), np.float32), np.eye(4))
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(tmp_path / "a.png")
    pred = _predictor(_Bright(), "segmentation", 4, "zscore")
    with pytest.raises(DataError, match="a.png has 1 channel.*BraTS case folder"):
        predict_inputs(pred, [tmp_path / "a.png"], tmp_path / "out")


def test_classification_scales_images_to_the_run_and_rows_per_slice(tmp_path: Path) -> None:
    img = np.zeros((20, 20), np.uint8)
    img[5:15, 5:15] = np.random.default_rng(1).integers(100, 250, (10, 10))
    Image.fromarray(img).save(tmp_path / "a.png")
    unit = _predictor(_Mean(), "classification", 1, "unit")
    zscore = _predictor(_Mean(), "classification", 1, "zscore")
    p_unit = predict_inputs(unit, [tmp_path / "a.png"], None)[0]["probabilities"]
    p_z = predict_inputs(zscore, [tmp_path / "a.png"], None)[0]["probabilities"]
    # unit: the image as read ([0, 1]); zscore: the same image z-scored inside the "brain".
    expected_unit = float(unit.predict_images([img[None] / 255.0])[0][1])
    as_read = (img[None] / 255.0).astype(np.float32)
    expected_z = float(zscore.predict_images([zscore_brain(as_read)])[0][1])
    assert p_unit["c1"] == pytest.approx(expected_unit, abs=1e-6)
    assert p_z["c1"] == pytest.approx(expected_z, abs=1e-6) and p_z["c1"] != pytest.approx(
        p_unit["c1"]
    )
    write_nifti(tmp_path / "v.nii.gz", np.random.default_rng(0).random((8, 8, 3)), np.eye(4))
    rows = predict_inputs(unit, [tmp_path / "v.nii.gz"], None)
    assert [r["slice"] for r in rows] == [0, 1, 2]


def test_many_images_across_chunks_keep_their_order_and_own_masks(tmp_path: Path) -> None:
    """40 PNGs (batch 16 x 2 per chunk: three chunks, the last one partial) and a volume
    among them: every row is its own input's, in input order, and each mask is the
    bright square that input has (at a different place in every image)."""
    from braintumor.inference import predict_files

    pred = _predictor(_Bright(), "segmentation", 1, "unit")
    files: list[Path] = []
    for i in range(40):
        img = np.zeros((16, 16), np.uint8)
        r, c = divmod(i, 4)
        img[r : r + 4, 4 * c : 4 * c + 4] = 255
        f = tmp_path / f"img{i:02d}.png"
        Image.fromarray(img).save(f)
        files.append(f)
    vol = np.zeros((16, 16, 3), np.float32)
    vol[4:8, 4:8] = 1.0
    files.insert(17, write_nifti(tmp_path / "v.nii.gz", vol, np.eye(4)))
    scans = predict_files.read_inputs(pred, files)
    out = tmp_path / "out"
    out.mkdir()
    stems = [f.name.split(".")[0] for f in files]
    rows = predict_files._segment_all(pred, scans, out, stems, batch=16, chunk_batches=2)
    assert [r["input"] for r in rows] == [str(f) for f in files]
    for f, row in zip(files, rows, strict=True):
        if f.suffix == ".png":
            mask = np.asarray(Image.open(row["mask"])) > 0
            assert np.array_equal(mask, np.asarray(Image.open(f)) > 0), f.name
            assert Path(row["overlay"]).is_file()
        else:
            assert row["pixels"]["c0"] == 4 * 4 * 3 and row["mask"].endswith("_mask.nii.gz")
