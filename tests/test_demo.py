"""The demo end to end in quick mode (tiny sizes, one epoch), through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from braintumor.cli import main


def test_quick_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    main(["demo", "--quick", "--out", str(out)])
    printed = capsys.readouterr().out
    html = out / "report" / "report.html"
    assert f"report: {html}" in printed and "pipeline metrics:" in printed
    text = html.read_text()
    assert "data:image/png;base64," in text and "gated vs segmenter alone" in text
    metrics = json.loads((out / "pipeline" / "pipeline_metrics.json").read_text())
    assert metrics["n_images"] > 0 and {"gated", "ungated", "gate"} <= set(metrics)
    summary = json.loads((out / "findings" / "summary.json").read_text())
    assert summary["inputs"] and all(Path(i["json"]).is_file() for i in summary["inputs"])
    assert list((out / "findings").glob("*/*_mask.nii.gz"))
    assert list((out / "explain").glob("*_gradcam.png"))
    for run in ("classifier", "segmenter"):
        assert (out / run / "model.safetensors").is_file()
