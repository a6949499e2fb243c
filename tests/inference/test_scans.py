"""Inputs a user has: NIfTI volumes, DICOM series, BraTS case folders, 2D images."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from braintumor.data.io import write_nifti
from braintumor.errors import DataError
from braintumor.inference.scans import load_input


def _affine() -> np.ndarray:
    a = np.diag([-0.9, 1.1, 2.5, 1.0])
    a[:3, 3] = [10.0, -20.0, 30.0]
    return a


def test_nifti_round_trip_keeps_affine_shape_and_voxels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vol = rng.random((12, 10, 5)).astype(np.float32) * 1000  # X x Y x Z, not square
    src = write_nifti(tmp_path / "scan.nii.gz", vol, _affine())
    scan = load_input(src)
    assert scan.kind == "volume" and scan.n_slices == 5
    assert scan.data.shape == (1, 5, 10, 12)  # C x Z x H(=Y) x W(=X)
    assert scan.spacing == pytest.approx((1.1, 0.9)) and scan.slice_thickness == pytest.approx(2.5)
    # A per-slice "segmentation" (threshold), mapped back, must equal thresholding the volume.
    slices = scan.slices("unit")
    cut = float(np.median(np.concatenate([s.ravel() for s in slices])))
    masks = [(s > cut).astype(np.uint8) for s in slices]
    back = scan.mask_volume(masks)[0]
    out = write_nifti(tmp_path / "mask.nii.gz", back, scan.affine, scan.header)
    img = nib.load(out)
    assert img.shape == vol.shape
    np.testing.assert_allclose(img.affine, _affine())
    ref = np.stack([(s[0] > cut) for s in slices])  # Z x H x W
    np.testing.assert_array_equal(np.asarray(img.dataobj), ref.transpose(2, 1, 0))
    np.testing.assert_array_equal(scan.data[0, 3], vol[:, :, 3].T)  # the brats orientation


def _write_dicom_series(folder: Path, planes: list[np.ndarray]) -> None:
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir()
    series = generate_uid()
    # Written in shuffled order: the reader must sort by position along the normal.
    for z in (2, 0, 1):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # MR image storage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = (
            meta.MediaStorageSOPClassUID,
            meta.MediaStorageSOPInstanceUID,
        )
        ds.SeriesInstanceUID, ds.Modality = series, "MR"
        ds.Rows, ds.Columns = planes[z].shape
        ds.PixelSpacing = [0.8, 0.5]
        ds.SliceThickness = 3.0
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, 3.0 * z]
        ds.InstanceNumber = z + 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = planes[z].astype(np.uint16).tobytes()
        pydicom.dcmwrite(folder / f"im{z}.dcm", ds, enforce_file_format=True)


def test_dicom_series_read_in_slice_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    planes = [rng.integers(0, 4000, (6, 9)).astype(np.uint16) for _ in range(3)]
    _write_dicom_series(tmp_path / "series", planes)
    scan = load_input(tmp_path / "series")
    assert scan.kind == "dicom" and scan.n_slices == 3
    for z in range(3):  # each slice as the DICOM file shows it: rows x columns
        np.testing.assert_array_equal(scan.data[0, z], planes[z])
    assert scan.spacing == pytest.approx((0.8, 0.5)) and scan.slice_thickness == pytest.approx(3)
    assert scan.voxel_volume_ml == pytest.approx(0.8 * 0.5 * 3 / 1000)
    # Masks go back into the series' voxel grid and can be written as NIfTI.
    back = scan.mask_volume([(p > 2000).astype(np.uint8)[None] for p in planes])[0]
    out = write_nifti(tmp_path / "m.nii.gz", back, scan.affine)
    assert nib.load(out).shape == (9, 6, 3)


def test_brats_case_channels_in_format_order(tmp_path: Path) -> None:
    case = tmp_path / "BraTS2021_00001"
    case.mkdir()
    for value, name in enumerate(["t1", "t1ce", "t2", "flair", "seg"], start=1):
        vol = np.zeros((8, 8, 3), np.float32)
        vol[2:6, 2:6] = value
        write_nifti(case / f"{case.name}_{name}.nii.gz", vol, np.eye(4))
    scan = load_input(case)
    assert scan.kind == "brats" and scan.channel_names == ["flair", "t1", "t1ce", "t2"]
    assert [float(c.max()) for c in scan.data] == [4.0, 1.0, 2.0, 3.0]
    assert scan.display_channel == 0  # FLAIR is what overlays show
    z = scan.slices("zscore")[1]  # z-scored inside the non-zero brain, like the brats format
    assert z.shape == (4, 8, 8) and z[:, 0, 0].tolist() == [0, 0, 0, 0]


def test_image_and_bad_inputs(tmp_path: Path) -> None:
    Image.fromarray(np.full((5, 7), 255, np.uint8)).save(tmp_path / "a.png")
    scan = load_input(tmp_path / "a.png")
    assert scan.kind == "image" and scan.data.shape == (1, 5, 7) and scan.spacing is None
    assert scan.slices()[0].max() == pytest.approx(1.0)
    with pytest.raises(DataError, match="input not found"):
        load_input(tmp_path / "missing.png")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="unsupported input"):
        load_input(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no DICOM images"):
        load_input(tmp_path / "empty")


def test_display_slices_are_the_unit_scale_display_channel(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    case = tmp_path / "BraTS2021_00002"
    case.mkdir()
    for k, name in enumerate(["t1", "t1ce", "t2", "flair"]):
        vol = (rng.random((10, 9, 7)) * 1000 * (k + 1)).astype(np.float32)
        write_nifti(case / f"{case.name}_{name}.nii.gz", vol, np.eye(4))
    scan = load_input(case)
    ref = load_input(case).slices("unit")  # every channel of every slice, scaled
    ch = scan.display_channel
    picked = scan.display_slices([5, 0, 3])
    for z, got in zip([5, 0, 3], picked, strict=True):
        assert got.shape == (9, 10) and got.dtype == np.float32
        np.testing.assert_array_equal(got, ref[z][ch])
    every = scan.display_slices()
    assert len(every) == 7 and all(
        np.array_equal(a, r[ch]) for a, r in zip(every, ref, strict=True)
    )
    # An 8-bit image (already on the unit scale) and a cached "unit" scale agree too.
    Image.fromarray(rng.integers(0, 255, (6, 5), dtype=np.uint8)).save(tmp_path / "s.png")
    img = load_input(tmp_path / "s.png")
    np.testing.assert_array_equal(img.display_slices([0])[0], img.slices("unit")[0][0])
    np.testing.assert_array_equal(img.display_slices()[0], img.slices("unit")[0][0])
