"""ONNX export: round trip against PyTorch, metadata, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from braintumor.models import create_model
from braintumor.serve.export import ExportError, export_model, read_metadata, run_onnx


def _card(task: str, in_channels: int = 1, num_classes: int = 2, size: int = 32) -> dict:
    return {
        "name": "simple_cnn" if task == "classification" else "unet",
        "task": task,
        "in_channels": in_channels,
        "num_classes": num_classes,
        "classes": ["no", "yes"] if task == "classification" else [],
        "mask_channels": ["tumor"] if task == "segmentation" else [],
        "preprocessing": {"image_size": size, "channels": in_channels, "crop": True},
        "threshold": 0.5,
    }


def _classifier() -> nn.Module:
    torch.manual_seed(0)
    return create_model("simple_cnn", in_channels=1, num_classes=2, widths=(4, 8, 8), hidden=8)


def _segmenter() -> nn.Module:
    torch.manual_seed(0)
    return create_model("unet", in_channels=3, num_classes=1, n_filters=4, depth=2)


def test_classifier_round_trip_and_metadata(tmp_path: Path) -> None:
    model, card = _classifier(), _card("classification")
    res = export_model(model, card, tmp_path / "m.onnx")
    assert res.path == tmp_path / "m.onnx" and res.path.is_file()
    assert 0 <= res.max_abs_diff < 1e-4
    # A fresh input with another batch size: the batch dimension really is dynamic.
    x = np.random.default_rng(1).random((3, 1, 32, 32), dtype=np.float32)
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    got = run_onnx(res.path, x)
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got, expected, atol=1e-4)

    meta = read_metadata(res.path)
    assert meta["task"] == "classification"
    assert json.loads(meta["classes"]) == ["no", "yes"]
    assert json.loads(meta["preprocessing"]) == card["preprocessing"]
    assert meta["output_kind"] == "logits"


def test_segmenter_round_trip(tmp_path: Path) -> None:
    model, card = _segmenter(), _card("segmentation", in_channels=3, num_classes=1)
    res = export_model(model, card, tmp_path / "seg.onnx")
    assert res.input_shape == (2, 3, 32, 32)
    x = np.random.default_rng(2).random((1, 3, 32, 32), dtype=np.float32)
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_onnx(res.path, x), expected, atol=1e-4)
    assert json.loads(read_metadata(res.path)["mask_channels"]) == ["tumor"]


def test_fixed_batch_when_not_dynamic(tmp_path: Path) -> None:
    res = export_model(
        _classifier(), _card("classification"), tmp_path / "m.onnx", dynamic_batch=False
    )
    assert res.input_shape == (1, 1, 32, 32)
    x = np.zeros((2, 1, 32, 32), dtype=np.float32)
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        run_onnx(res.path, x)


class _Unexportable(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


@pytest.mark.parametrize("how", ["exporter_fails", "check_fails"])
def test_failure_leaves_existing_file_and_no_partial(tmp_path: Path, how: str) -> None:
    good = tmp_path / "model.onnx"
    good.write_bytes(b"previous good export")
    fresh = tmp_path / "fresh.onnx"
    for target in (good, fresh):
        with pytest.raises(ExportError):
            if how == "exporter_fails":
                export_model(_Unexportable(), _card("classification"), target)
            else:  # a tolerance no output can meet: the onnxruntime check must refuse it
                export_model(_classifier(), _card("classification"), target, atol=-1.0, rtol=0.0)
    assert good.read_bytes() == b"previous good export"
    assert not fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temp left


def test_missing_output_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        export_model(_classifier(), _card("classification"), tmp_path / "nope" / "m.onnx")


def test_export_cli_writes_run_model(
    cls_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from braintumor.cli import main
    from braintumor.inference.runs import load_run

    out = tmp_path / "cls.onnx"
    main(["export", str(cls_run), "--out", str(out), "--no-dynamic-batch"])
    printed = capsys.readouterr().out
    assert str(out) in printed and "max abs difference" in printed
    run = load_run(cls_run)
    x = np.random.default_rng(5).random((1, 1, 32, 32), dtype=np.float32)
    with torch.no_grad():
        expected = run.model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_onnx(out, x), expected, atol=1e-4)
    assert json.loads(read_metadata(out)["classes"]) == run.card["classes"]


def test_export_cli_missing_run_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from braintumor.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["export", str(tmp_path / "nope")])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("error:")


class _OddPool(nn.Module):
    """Adaptive pooling to 3 x 3 from 8 x 8: a size the TorchScript exporter refuses."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d((3, 3))
        self.up = nn.AdaptiveAvgPool2d((5, 5))  # and 3 x 3 -> 5 x 5 (overlapping bins)
        self.fc = nn.Linear(4 * 25, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.up(self.pool(self.conv(x))), 1))


def test_non_divisible_adaptive_pool_is_exported_exactly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _OddPool().eval()
    card = {**_card("classification", size=8), "name": "odd_pool"}
    res = export_model(model, card, tmp_path / "odd.onnx")
    assert res.max_abs_diff < 1e-5
    assert isinstance(model.pool, nn.AdaptiveAvgPool2d)  # the caller's model is untouched
    x = np.random.default_rng(4).random((3, 1, 8, 8), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_onnx(res.path, x), expected, atol=1e-5)
