"""One scan, one mask: ``predict``, ``pipeline`` (ungated), ``serve`` and the ONNX export
all read, scale and resize a scan the same way (the inference layer), so they agree."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from braintumor.cli import main
from braintumor.inference.predict_files import segment_scan
from braintumor.inference.predictor import Predictor
from braintumor.inference.runs import load_run
from braintumor.inference.scans import load_input
from braintumor.serve.app import create_app
from braintumor.serve.export import OnnxModel, export_run


@pytest.fixture(scope="module")
def scan_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A non-square NIfTI volume in scanner units (so every path must scale it)."""
    rng = np.random.default_rng(7)
    vol = (rng.random((36, 28, 4)) * 1200).astype(np.float32)
    vol[:4] = 0  # background the scaling has to handle
    path = tmp_path_factory.mktemp("scan") / "case.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.diag([0.8, 0.8, 3.0, 1.0])), path)
    return path


@pytest.fixture(scope="module", params=["unit", "zscore"])
def run_pair(
    request: pytest.FixtureRequest,
    seg_run: Path,
    cls_run: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, str]:
    """(segmenter, classifier, scale): runs whose cards say ``unit`` or ``zscore``."""
    if request.param == "unit":
        return seg_run, cls_run, "unit"
    pair = []
    for run in (seg_run, cls_run):
        copy = tmp_path_factory.mktemp("zscore") / run.name
        shutil.copytree(run, copy)
        card = json.loads((copy / "model.json").read_text())
        card["normalisation"] = {"intensity": "zscore", "description": "test"}
        (copy / "model.json").write_text(json.dumps(card))
        pair.append(copy)
    return pair[0], pair[1], "zscore"


def _nifti_mask(path: Path) -> np.ndarray:
    return np.asarray(nib.load(path).dataobj).astype(np.uint8)  # X x Y x Z


def test_predict_pipeline_serve_and_onnx_give_the_same_mask(
    scan_file: Path, run_pair: tuple[Path, Path, str], tmp_path: Path
) -> None:
    seg_run, cls_run, scale = run_pair
    # predict (the CLI): writes the mask as NIfTI in the scan's voxel grid.
    main(["predict", str(seg_run), str(scan_file), "--out", str(tmp_path / "pred"), "--json"])
    predicted = _nifti_mask(tmp_path / "pred" / "case_mask.nii.gz")
    assert 0 < predicted.sum() < predicted.size  # a partial mask: the comparison means something
    assert Predictor.from_run(seg_run, "cpu").intensity == scale

    # pipeline with the gate open (threshold 0 keeps every slice's mask).
    main(
        ["pipeline", str(scan_file), "--classifier", str(cls_run), "--segmenter", str(seg_run)]
        + ["--out", str(tmp_path / "pipe"), "--threshold", "0", "--no-progress"]
    )
    np.testing.assert_array_equal(
        _nifti_mask(tmp_path / "pipe" / "case" / "case_mask.nii.gz"), predicted
    )

    # serve: each slice's RGBA mask is opaque exactly on the tumour (slice z = vol[:, :, z].T).
    with TestClient(create_app([seg_run])) as client:
        out = client.post("/predict", files={"file": ("case.nii.gz", scan_file.read_bytes())})
    assert out.status_code == 200, out.text
    served = np.stack(
        [
            np.asarray(Image.open(io.BytesIO(base64.b64decode(s["mask_png"]))))[..., 3].T > 0
            for s in out.json()["slices"]
        ],
        axis=-1,
    )
    np.testing.assert_array_equal(served.astype(np.uint8), predicted)

    # ONNX: the exported graph behind the same Predictor (card intensity and geometry).
    onnx = export_run(seg_run, tmp_path / "seg.onnx").path
    card = load_run(seg_run).card
    scan = load_input(scan_file)
    exported = Predictor(OnnxModel(onnx), card, "cpu")
    probs = np.stack(exported.predict_scan(scan))  # Z x K x H x W
    masks = segment_scan(exported, scan)
    from_onnx = scan.mask_volume(list(masks))[0]
    # ONNX Runtime and PyTorch fp32 differ by float noise (~1e-6): only pixels whose
    # probability sits on the threshold may fall on the other side. (The graph is fp32;
    # predict runs a bf16-trained run in bf16, so the reference here is eager fp32.)
    fp32 = Predictor.from_run(seg_run, "cpu", precision="32-true")
    reference = scan.mask_volume(list(segment_scan(fp32, scan)))[0]
    on_edge = scan.mask_volume(list(np.abs(probs - exported.threshold) < 1e-4))[0]
    assert not ((from_onnx != reference) & ~on_edge).any()
