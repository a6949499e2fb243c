"""The HTTP service on two tiny trained runs (classification + segmentation)."""

from __future__ import annotations

import base64
import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from braintumor.serve.app import create_app
from braintumor.serve.results import segmentation_result

LIMIT = 100_000  # bytes; the test scans are a few KB


def _png(h: int = 40, w: int = 30, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray((rng.random((h, w)) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def _expected_probs(run: Path, png: bytes, tmp_path: Path) -> np.ndarray:
    """What the predictor gives for the same file, called directly (no HTTP)."""
    from braintumor.data.io import read_image
    from braintumor.inference.predictor import Predictor

    path = tmp_path / "scan.png"
    path.write_bytes(png)
    return np.asarray(Predictor.from_run(run).predict_images([read_image(path)])[0])


@pytest.fixture(scope="module")
def client(cls_run: Path, seg_run: Path) -> Iterator[TestClient]:
    with TestClient(create_app([cls_run, seg_run], max_upload_bytes=LIMIT)) as c:
        yield c


@pytest.fixture
def upload_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Uploads are copied under here, so a test can check they are removed."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_health_and_models(client: TestClient, cls_run: Path, seg_run: Path) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["models"] == 2
    assert health["max_upload_bytes"] == LIMIT
    models = {m["name"]: m for m in client.get("/models").json()}
    assert set(models) == {cls_run.name, seg_run.name}
    for run in (cls_run, seg_run):
        card = json.loads((run / "model.json").read_text())
        assert models[run.name]["task"] == card["task"]
        assert models[run.name]["classes"] == card["classes"]
        assert models[run.name]["mask_channels"] == card["mask_channels"]


def test_page_is_self_contained_with_a_form(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "<form" in page and 'type="file"' in page and "predict" in page
    assert "http://" not in page and "https://" not in page  # no CDN, works offline


def test_predict_classification(
    client: TestClient, cls_run: Path, tmp_path: Path, upload_tmp: Path
) -> None:
    png = _png()
    r = client.post(
        "/predict", params={"model": cls_run.name}, files={"file": ("scan.png", png, "image/png")}
    )
    assert r.status_code == 200, r.text
    out = r.json()
    card = json.loads((cls_run / "model.json").read_text())
    assert out["task"] == "classification" and out["image_size"] == [40, 30]
    assert list(out["probabilities"]) == card["classes"]
    probs = np.array(list(out["probabilities"].values()))
    np.testing.assert_allclose(probs, _expected_probs(cls_run, png, tmp_path), atol=1e-5)
    assert out["class"] == card["classes"][int(np.argmax(probs))]
    assert not list(upload_tmp.glob("braintumor-upload-*"))  # the temp copy is gone


def test_predict_segmentation(client: TestClient, seg_run: Path, tmp_path: Path) -> None:
    png = _png(seed=3)
    r = client.post(
        "/predict", params={"model": seg_run.name}, files={"file": ("scan.png", png, "image/png")}
    )
    assert r.status_code == 200, r.text
    out = r.json()
    probs = _expected_probs(seg_run, png, tmp_path)
    union = (probs.reshape(-1, 40, 30) > out["threshold"]).any(axis=0)
    assert out["tumor_area_px"] == int(union.sum())
    assert 0 < out["tumor_area_px"] < 40 * 30  # the tiny run is built to give a partial mask
    mask = _decode(out["mask_png"])
    assert mask.shape == (40, 30) and int((mask > 0).sum()) == out["tumor_area_px"]
    assert _decode(out["overlay_png"]).shape == (40, 30, 3)
    ys, xs = np.nonzero(union)
    box = {"x_min": xs.min(), "y_min": ys.min(), "x_max": xs.max(), "y_max": ys.max()}
    assert out["bbox"] == box


def _chunks(total: int) -> Iterator[bytes]:
    yield b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
    for _ in range(total // 10_000):
        yield b"x" * 10_000
    yield b"\r\n--XX--\r\n"


@pytest.mark.parametrize("how", ["just_over", "declared_length", "chunked_stream"])
def test_oversized_upload_is_413(client: TestClient, upload_tmp: Path, how: str) -> None:
    if how == "chunked_stream":  # no Content-Length: cut off while streaming
        r = client.post(
            "/predict",
            content=_chunks(10 * LIMIT),
            headers={"content-type": "multipart/form-data; boundary=XX"},
        )
    else:
        size = LIMIT + 1 if how == "just_over" else 10 * LIMIT
        r = client.post("/predict", files={"file": ("a.png", b"\0" * size, "image/png")})
    assert r.status_code == 413
    assert "limit" in r.json()["detail"]
    assert not list(upload_tmp.glob("braintumor-upload-*"))


def test_upload_at_the_limit_is_read(client: TestClient) -> None:
    # Exactly LIMIT bytes passes the size check and fails later, as a bad image.
    r = client.post("/predict", files={"file": ("a.png", b"\0" * LIMIT, "image/png")})
    assert r.status_code == 400


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("scan.png", "cannot decode"),
        ("scan.xyz", "unsupported input"),
        ("brain.nii.gz", "is a volume"),  # the double suffix survives the temp copy
    ],
)
def test_bad_image_is_400_naming_the_file(
    client: TestClient, upload_tmp: Path, name: str, needle: str
) -> None:
    r = client.post("/predict", files={"file": (name, b"not an image at all", "image/png")})
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert needle in detail and detail.startswith(name)  # the user's name, not a temp path
    assert not list(upload_tmp.glob("braintumor-upload-*"))


def test_missing_file_field_is_400(client: TestClient) -> None:
    r = client.post("/predict", files={"scan": ("a.png", _png(), "image/png")})
    assert r.status_code == 400 and "'file'" in r.json()["detail"]


def test_unknown_model_is_404_listing_names(
    client: TestClient, cls_run: Path, seg_run: Path
) -> None:
    r = client.post(
        "/predict", params={"model": "nope"}, files={"file": ("a.png", _png(), "image/png")}
    )
    assert r.status_code == 404
    detail = r.json()["detail"]
    assert "nope" in detail and cls_run.name in detail and seg_run.name in detail


def test_duplicate_run_names_get_suffixes(cls_run: Path) -> None:
    with TestClient(create_app([cls_run, cls_run])) as c:
        assert [m["name"] for m in c.get("/models").json()] == [cls_run.name, f"{cls_run.name}-2"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--port", "0"], "--port"),
        (["--max-upload-mb", "0"], "--max-upload-mb"),
        (["--port", "8000", "/does/not/exist"], "not found"),
    ],
)
def test_serve_cli_errors_exit_2(
    cls_run: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    from braintumor.cli import main

    runs = [a for a in args if a.startswith("/")] or [str(cls_run)]
    options = [a for a in args if not a.startswith("/")]
    with pytest.raises(SystemExit) as exc:
        main(["serve", *runs, *options])  # every case fails before a server starts
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and needle in err


def test_segmentation_result_multi_region() -> None:
    image = np.zeros((4, 20, 30), np.float32)
    probs = np.zeros((3, 20, 30), np.float32)
    probs[0, 2:5, 3:9] = 0.9  # NCR: 3 x 6
    probs[1, 10:12, 20:25] = 0.7  # ED: 2 x 5
    probs[2, 2:5, 3:9] = 0.5  # ET: exactly at the threshold, so not counted
    out = segmentation_result(image, probs, ["NCR", "ED", "ET"], threshold=0.5)
    assert out["regions"] == {"NCR": 18, "ED": 10, "ET": 0}
    assert out["tumor_area_px"] == 28
    assert out["bbox"] == {"x_min": 3, "y_min": 2, "x_max": 24, "y_max": 11}
    assert set(out["colors"]) == {"NCR", "ED", "ET"} and out["colors"]["NCR"] != out["colors"]["ED"]
    assert _decode(out["overlay_png"]).shape == (20, 30, 3)
    empty = segmentation_result(image, np.zeros((1, 20, 30)), ["tumor"], threshold=0.5)
    assert empty["tumor_area_px"] == 0 and empty["bbox"] is None


def test_malformed_multipart_is_400(client: TestClient) -> None:
    r = client.post(
        "/predict",
        content=b"--XX\r\nno headers, no end",
        headers={"content-type": "multipart/form-data; boundary=XX"},
    )
    assert r.status_code == 400 and "cannot parse" in r.json()["detail"]
