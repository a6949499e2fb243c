"""Readers refuse bombs, empty headers, complex and all-NaN data with one clear error."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile

from braintumor.data.io import read_image, read_mask, read_volume
from braintumor.data.limits import max_pixels, pixel_count
from braintumor.errors import ConfigError, DataError
from tests.data._hostile import nifti_with_affine_row, png_bomb, tiff_with_size
from tests.data._writers import save_png


def test_png_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    bomb = png_bomb(tmp_path / "bomb.png", 6000, 6000)  # 36 M pixels, ~35 KB on disk
    tracemalloc.start()
    with pytest.raises(DataError, match="exceeds the limit of 1,000,000 pixels"):
        read_image(bomb, max_pixels=1_000_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5_000_000  # decoded, it would be 36 MB (uint8) and 144 MB (float32)


def test_tiff_bomb_and_empty_header_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="exceeds the limit"):
        read_image(tiff_with_size(tmp_path / "big.tif", 30000, 30000))
    with pytest.raises(DataError, match=r"empty image \(0 x 0\)"):
        read_image(tiff_with_size(tmp_path / "zero.tif", 0, 0))
    with pytest.raises(DataError, match="exceeds the limit"):
        read_mask(tiff_with_size(tmp_path / "big_mask.tif", 20000, 20000), max_pixels=10_000)


def test_limit_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_png(tmp_path / "a.png", np.zeros((20, 30), np.uint8))
    monkeypatch.setenv("BRAINTUMOR_MAX_PIXELS", "500")
    with pytest.raises(DataError, match="BRAINTUMOR_MAX_PIXELS"):
        read_image(path)
    assert read_image(path, max_pixels=600).shape == (1, 20, 30)  # an explicit limit wins
    monkeypatch.setenv("BRAINTUMOR_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match="BRAINTUMOR_MAX_PIXELS"):
        max_pixels()


def test_pixel_count_ignores_a_colour_axis() -> None:
    assert pixel_count((10, 20, 3)) == pixel_count((3, 10, 20)) == pixel_count((10, 20)) == 200


def test_complex_and_all_nan_images_are_refused(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "c.tif", np.ones((8, 8), np.complex64))
    with pytest.raises(DataError, match="complex values"):
        read_image(tmp_path / "c.tif")
    tifffile.imwrite(tmp_path / "nan.tif", np.full((8, 8), np.nan, np.float32))
    with pytest.raises(DataError, match="NaN or infinite"):
        read_image(tmp_path / "nan.tif")
    partly = np.ones((8, 8), np.float32)
    partly[0, 0] = np.nan  # one bad pixel is tolerated (robust scaling ignores it)
    tifffile.imwrite(tmp_path / "partly.tif", partly)
    assert np.isfinite(read_image(tmp_path / "partly.tif")).all()


@pytest.mark.parametrize(
    ("row", "message"),
    [([0.0, 0.0, 0.0, 0.0], "singular"), ([np.nan, 0.0, 0.0, 0.0], "not finite")],
)
def test_bad_nifti_affine_is_refused(tmp_path: Path, row: list[float], message: str) -> None:
    path = nifti_with_affine_row(tmp_path / "v.nii.gz", row)
    with pytest.raises(DataError, match=message):
        read_volume(path)


def test_complex_nan_and_oversized_volumes_are_refused(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.complex64), np.eye(4)), tmp_path / "c.nii")
    with pytest.raises(DataError, match="complex values"):
        read_volume(tmp_path / "c.nii")
    nib.save(nib.Nifti1Image(np.full((4, 4, 4), np.nan, np.float32), np.eye(4)), tmp_path / "n.nii")
    with pytest.raises(DataError, match="NaN or infinite"):
        read_volume(tmp_path / "n.nii")
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8), np.float32), np.eye(4)), tmp_path / "b.nii")
    with pytest.raises(DataError, match="exceeds the limit of 100 voxels"):
        read_volume(tmp_path / "b.nii", max_voxels=100)


@pytest.mark.parametrize(
    "option",
    ["n_patients=99999999999999999999", "size=100000", "slices_per_patient=0", "seed=-1"],
)
def test_synthetic_options_are_bounded(option: str) -> None:
    from braintumor.data import create_format

    key, value = option.split("=")
    with pytest.raises(ConfigError, match=key):
        create_format("synthetic", **{key: int(value)})  # refused before generating
