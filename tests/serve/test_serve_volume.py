"""Volumes through the service: NIfTI and zipped DICOM series, every slice with its mask."""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from braintumor.inference.predict_files import segment_scan
from braintumor.inference.predictor import Predictor
from braintumor.inference.scans import load_input
from braintumor.serve.app import create_app
from braintumor.serve.volume import MAX_ZIP_MEMBERS
from tests.data._writers import save_dicom

ZOOMS = (0.9, 1.1, 2.5)  # mm: one voxel is 0.9 * 1.1 * 2.5 / 1000 mL


def _decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


@pytest.fixture(scope="module")
def client(cls_run: Path, seg_run: Path) -> Iterator[TestClient]:
    with TestClient(create_app([seg_run, cls_run])) as c:
        yield c


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _nifti(path: Path, shape: tuple[int, int, int] = (30, 24, 5)) -> Path:
    vol = np.random.default_rng(2).random(shape).astype(np.float32) * 900
    nib.save(nib.Nifti1Image(vol, np.diag([*ZOOMS, 1.0])), path)
    return path


def test_nifti_upload_gives_every_slice_with_mask_and_volume(
    client: TestClient, seg_run: Path, tmp_path: Path
) -> None:
    path = _nifti(tmp_path / "case.nii.gz")
    r = client.post("/predict", files={"file": ("case.nii.gz", path.read_bytes())})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["kind"] == "volume" and out["n_slices"] == 5 and out["image_size"] == [24, 30]
    # The same masks as `predict` computes for the file (same reader, scale, geometry).
    masks = segment_scan(Predictor.from_run(seg_run, "cpu"), load_input(path))
    assert out["tumor_voxels"]["tumor"] == int(masks.sum()) > 0
    voxel_ml = ZOOMS[0] * ZOOMS[1] * ZOOMS[2] / 1000
    assert out["tumor_volume_ml"]["any"] == pytest.approx(masks.sum() * voxel_ml, abs=1e-3)
    for z, s in enumerate(out["slices"]):
        gray, rgba = _decode(s["image_png"]), _decode(s["mask_png"])
        assert gray.shape == (24, 30) and rgba.shape == (24, 30, 4)
        # The mask layer is opaque exactly on the tumour, transparent elsewhere.
        np.testing.assert_array_equal(rgba[..., 3] > 0, masks[z, 0] > 0)
        assert s["tumor_px"] == int(masks[z].sum())
    assert out["tumor_voxels"]["tumor"] == sum(s["tumor_px"] for s in out["slices"])


def test_zipped_dicom_series_is_read_in_slice_order(client: TestClient, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    planes = [rng.integers(0, 3000, (20, 16)).astype(np.uint16) for _ in range(3)]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for z in (2, 0, 1):  # shuffled: the reader sorts by position
            f = save_dicom(
                tmp_path / f"s{z}.dcm", planes[z], position=(0, 0, 3.0 * z), instance=z + 1
            )
            zf.write(f, f"series/../{f.name}")  # a path trying to leave the folder
    r = client.post("/predict", files={"file": ("series.zip", buf.getvalue())})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["n_slices"] == 3 and out["image_size"] == [20, 16]
    assert out["spacing_mm"] == pytest.approx([0.5, 0.7, 3.0])
    assert out["tumor_volume_ml"] is not None


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("bad.zip", b"not a zip", "not a valid zip"),
        ("empty.zip", _zip({"notes.txt": b"hello"}), "no DICOM images"),
        ("brain.nii.gz", b"not a volume", "cannot read NIfTI"),
    ],
)
def test_bad_volume_is_400_naming_the_file(
    client: TestClient, name: str, data: bytes, needle: str
) -> None:
    r = client.post("/predict", files={"file": (name, data)})
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert needle in detail and detail.startswith(name)


def test_zip_with_too_many_members_is_refused(client: TestClient) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(MAX_ZIP_MEMBERS + 1):
            zf.writestr(f"{i}.dcm", b"")
    r = client.post("/predict", files={"file": ("many.zip", buf.getvalue())})
    assert r.status_code == 400 and "at most" in r.json()["detail"]


def test_volume_to_a_classifier_is_400(client: TestClient, cls_run: Path, tmp_path: Path) -> None:
    path = _nifti(tmp_path / "v.nii")
    r = client.post(
        "/predict", params={"model": cls_run.name}, files={"file": ("v.nii", path.read_bytes())}
    )
    assert r.status_code == 400 and "segmentation model" in r.json()["detail"]


def test_page_offers_volume_viewer(client: TestClient) -> None:
    page = client.get("/").text
    assert ".nii" in page and ".zip" in page
    assert 'id="slice"' in page and 'id="opacity"' in page and "mL" in page
