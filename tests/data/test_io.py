"""Image, mask and volume readers: formats, scaling, geometry and clear errors."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image

from braintumor.data import io
from braintumor.errors import DataError
from tests.data._writers import head_image, save_dicom, save_png


def test_png_gray_is_divided_by_255(tmp_path: Path) -> None:
    a = head_image()
    img = io.read_image(save_png(tmp_path / "a.png", a))
    assert img.shape == (1, 64, 80) and img.dtype == np.float32
    np.testing.assert_allclose(img[0], a / 255.0, atol=1e-6)


@pytest.mark.parametrize("ext", ["png", "bmp", "jpg", "tif"])
def test_rgb_formats_give_three_channels(tmp_path: Path, ext: str) -> None:
    a = np.stack([head_image(), head_image() // 2, np.zeros((64, 80), np.uint8)], axis=-1)
    p = tmp_path / f"a.{ext}"
    if ext == "tif":
        tifffile.imwrite(p, a)  # LGG-style 256x256x3 TIFF
    else:
        Image.fromarray(a).save(p)
    img = io.read_image(p)
    assert img.shape == (3, 64, 80)
    err = np.abs(img - np.moveaxis(a, -1, 0) / 255.0)
    assert (err.mean() < 0.03) if ext == "jpg" else (err.max() < 1e-6)  # JPEG is lossy


def test_rgba_and_palette_become_rgb(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 7
    assert io.read_image(save_png(tmp_path / "a.png", rgba)).shape == (3, 8, 8)
    pal = Image.fromarray(head_image(8, 8)).convert("P")
    pal.save(tmp_path / "p.png")
    img = io.read_image(tmp_path / "p.png")
    assert img.shape == (3, 8, 8) and img.max() > 0.7


def test_sixteen_bit_is_robustly_scaled(tmp_path: Path) -> None:
    a = head_image(value=3000, dtype=np.uint16)  # 12-bit data in a 16-bit file
    for p in (tmp_path / "a.png", tmp_path / "a.tif"):
        if p.suffix == ".png":
            Image.fromarray(a).save(p)
        else:
            tifffile.imwrite(p, a)
        img = io.read_image(p)
        assert img.min() == 0.0 and img.max() == 1.0  # not 3000/65535
        assert img[0, 32, 48] == 1.0 and img[0, 0, 0] == 0.0


def test_float_tiff_in_unit_range_is_kept(tmp_path: Path) -> None:
    a = np.linspace(0.2, 0.6, 64, dtype=np.float32).reshape(8, 8)
    tifffile.imwrite(tmp_path / "f.tif", a)
    np.testing.assert_allclose(io.read_image(tmp_path / "f.tif")[0], a)


def test_dicom_image_scaled_and_monochrome1_inverted(tmp_path: Path) -> None:
    a = head_image(16, 16, value=900, dtype=np.uint16)
    img = io.read_image(save_dicom(tmp_path / "a.dcm", a))
    assert img.shape == (1, 16, 16) and img.min() == 0 and img.max() == 1
    inv = io.read_image(save_dicom(tmp_path / "b.dcm", a, photometric="MONOCHROME1"))
    np.testing.assert_allclose(inv, 1 - img, atol=1e-6)
    assert io.image_spacing(tmp_path / "a.dcm") == (0.5, 0.7)


def test_read_mask_thresholds_and_merges_channels(tmp_path: Path) -> None:
    m = np.zeros((10, 10), np.uint8)
    m[2:5, 3:7] = 255
    out = io.read_mask(save_png(tmp_path / "m.png", m))
    assert out.dtype == np.uint8 and out.shape == (10, 10)
    np.testing.assert_array_equal(out, m > 0)
    np.testing.assert_array_equal(
        io.read_mask(save_png(tmp_path / "01.png", (m > 0).astype(np.uint8))), m > 0
    )
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[1, 1, 2] = 255  # foreground in one channel only
    assert io.read_mask(save_png(tmp_path / "rgb.png", rgb)).sum() == 1
    noisy = m.copy()
    noisy[m == 0] = 12  # JPEG-like ringing must not become foreground
    np.testing.assert_array_equal(io.read_mask(save_png(tmp_path / "n.png", noisy)), m > 0)


def test_nifti_roundtrip_keeps_affine_header_and_dtype(tmp_path: Path) -> None:
    affine = np.diag([-1.0, -1.0, 2.5, 1.0])
    affine[:3, 3] = [10, 239, -5]
    src = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), affine)
    src.header["descrip"] = b"source scan"
    src.set_qform(affine, code=1)
    src.set_sform(affine, code=2)
    nib.save(src, tmp_path / "in.nii.gz")
    vol, aff, hdr = io.read_volume(tmp_path / "in.nii.gz")
    assert vol.shape == (2, 3, 4) and vol.dtype == np.float32
    np.testing.assert_allclose(aff, affine)
    probs = vol / 23.0  # float data written with an int16 header must not be rounded
    out = io.write_nifti(tmp_path / "out" / "p.nii.gz", probs, aff, hdr)
    back, aff2, hdr2 = io.read_volume(out)
    np.testing.assert_allclose(back, probs, rtol=1e-6)
    np.testing.assert_allclose(aff2, affine)
    assert hdr2["descrip"].tobytes().startswith(b"source scan")
    assert int(hdr2["sform_code"]) == 2 and int(hdr2["qform_code"]) == 1
    assert io.image_spacing(out) == (1.0, 1.0, 2.5)


def test_read_dicom_series_sorts_slices_and_builds_affine(tmp_path: Path) -> None:
    folder = tmp_path / "series"
    zs = [4.0, 0.0, 2.0]  # files written out of anatomical order
    for i, z in enumerate(zs):
        pix = np.full((3, 5), int(z * 10), np.uint16)
        pix[0, 0] = 7  # marks row 0, column 0
        save_dicom(
            folder / f"f{i}.dcm",
            pix,
            position=(1.0, 2.0, z),
            instance=9 - i,
            slope=2.0,
            intercept=-5.0,
        )
    (folder / "README.txt").write_text("not dicom")
    vol, affine, spacing = io.read_dicom_series(folder)
    assert vol.shape == (5, 3, 3)  # X = columns, Y = rows, Z = slices
    np.testing.assert_allclose(vol[1, 1, :], [0 * 2 - 5, 20 * 2 - 5, 40 * 2 - 5])
    assert vol[0, 0, 0] == 7 * 2 - 5
    assert spacing == (0.7, 0.5, 2.0)
    # RAS affine: DICOM's LPS x and y flip sign; z steps 2 mm from the first slice
    np.testing.assert_allclose(affine[:3, :3], np.diag([-0.7, -0.5, 2.0]))
    np.testing.assert_allclose(affine[:3, 3], [-1.0, -2.0, 0.0])


def test_dicom_series_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        io.read_dicom_series(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no DICOM images"):
        io.read_dicom_series(tmp_path / "empty")
    save_dicom(tmp_path / "mix" / "a.dcm", np.zeros((2, 2)), series_uid="1.1")
    save_dicom(tmp_path / "mix" / "b.dcm", np.zeros((2, 2)), series_uid="1.2")
    with pytest.raises(DataError, match="2 DICOM series"):
        io.read_dicom_series(tmp_path / "mix")


def test_spacing_unknown_for_plain_images(tmp_path: Path) -> None:
    assert io.image_spacing(save_png(tmp_path / "a.png", head_image())) is None


def test_list_images_filters_and_sorts(tmp_path: Path) -> None:
    for name in ("b.JPG", "a.png", ".hidden.png", "notes.txt", "sub/c.tif"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in io.list_images(tmp_path)] == ["a.png", "b.JPG"]
    assert [p.name for p in io.list_images(tmp_path, recursive=True)] == ["a.png", "b.JPG", "c.tif"]


# --- bad input: every failure is a one-line DataError naming the file ---------------


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated(tmp_path: Path, ext: str) -> Path:
    rng = np.random.default_rng(0)
    p = tmp_path / f"full.{ext}"
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(p)
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return cut


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.png", "file not found"),
        (lambda d: d, "is a folder"),
        (lambda d: _write(d / "g.jpg", b"\xff\xd8 garbage bytes"), "corrupt"),
        (lambda d: _truncated(d, "jpg"), "truncated"),
        (lambda d: _truncated(d, "png"), "truncated"),
        (lambda d: _write(d / "x.gif", b"GIF89a"), "unknown image type"),
        (lambda d: _write(d / "v.nii.gz", b""), "NIfTI volume"),
    ],
    ids=["missing", "folder", "garbage-jpg", "truncated-jpg", "truncated-png", "gif", "nifti"],
)
def test_read_image_errors(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    with pytest.raises(DataError, match=message) as err:
        io.read_image(path)
    text = str(err.value)
    assert str(path) in text and "\n" not in text


def test_wrong_dimensions_are_reported(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((6, 16, 16), np.uint8))  # 6 pages
    with pytest.raises(DataError, match="stack.tif.*HxW"):
        io.read_image(tmp_path / "stack.tif")
    nib.save(nib.Nifti1Image(np.zeros((2, 2), np.float32), np.eye(4)), tmp_path / "flat.nii")
    with pytest.raises(DataError, match="flat.nii.*expected 3D"):
        io.read_volume(tmp_path / "flat.nii")


def test_read_volume_errors(tmp_path: Path) -> None:
    nib.save(nib.Nifti1Image(np.ones((8, 8, 8), np.float32), np.eye(4)), tmp_path / "v.nii.gz")
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes((tmp_path / "v.nii.gz").read_bytes()[:-40])
    with pytest.raises(DataError, match="cut.nii.gz.*corrupt or truncated"):
        io.read_volume(cut)
    with pytest.raises(DataError, match="not a NIfTI"):
        io.read_volume(save_png(tmp_path / "a.png", head_image()))
    with pytest.raises(DataError, match="must end in .nii"):
        io.write_nifti(tmp_path / "out.png", np.zeros((2, 2, 2)), np.eye(4))
