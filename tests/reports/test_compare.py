"""Comparison reports from two tiny trained runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from braintumor.config import load_config

TINY = [
    "data.spec=synthetic",
    "data.image_size=32",
    "data.batch_size=8",
    "trainer.epochs=1",
    "trainer.progress=false",
    "trainer.accelerator=cpu",
    "data.augment=false",
    "data.cache=false",
]
OPTIONS = {"n_patients": 8, "slices_per_patient": 3, "size": 32}


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from braintumor.engine.train import train

    root = tmp_path_factory.mktemp("runs")
    cls = load_config(None, [*TINY, "task=classification", "model.name=simple_cnn"])
    cls.model.kwargs = {"widths": [8, 8, 8], "hidden": 8}
    seg = load_config(None, [*TINY, "task=segmentation", "model.name=unet"])
    seg.model.kwargs = {"n_filters": 4, "depth": 2}
    for cfg in (cls, seg):
        cfg.data.options = dict(OPTIONS)
    return train(cls, root / "cls"), train(seg, root / "seg")


def test_report_has_table_curves_and_embedded_images(
    tiny_runs: tuple[Path, Path], tmp_path: Path
) -> None:
    from braintumor.reports.compare import compare_runs

    html_path, md_path = compare_runs(
        list(tiny_runs), tmp_path / "report", cases=1, throughput_seconds=0.05
    )
    html = html_path.read_text()
    assert "<table>" in html and "simple_cnn" in html and "unet" in html
    for header in ("balanced acc.", "F1 macro", "Dice per patient", "HD95 (px)", "images/s"):
        assert header in html
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    # learning curves x2, one confusion matrix, classification cases (right and/or wrong);
    # segmentation cases only exist when the tiny test split has a slice with tumor
    assert len(images) >= 4 and "most confident" in html
    assert not re.search(r'src="(?!data:)', html)  # nothing loaded from outside the file
    md = md_path.read_text()
    assert "| run | model |" in md and "figures/" in md
    assert all((tmp_path / "report" / m).is_file() for m in re.findall(r"\((figures/[^)]+)\)", md))


def test_pipeline_evaluation_and_report_through_the_cli(
    tiny_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from braintumor.cli import main

    cls, seg = tiny_runs
    pipe = tmp_path / "pipe"
    main(
        [
            "pipeline",
            "--classifier",
            str(cls),
            "--segmenter",
            str(seg),
            "--data",
            "synthetic",
            "--evaluate",
            "--out",
            str(pipe),
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert "segmenter alone" in printed and "saved splits.json" in printed
    res = json.loads((pipe / "pipeline_metrics.json").read_text())
    assert res["classifier_saw_test_slices"] == 0  # same patients, same split
    assert res["n_tumor_slices"] + res["n_healthy_slices"] == res["n_images"] > 0
    main(
        [
            "compare",
            str(seg),
            "--out",
            str(tmp_path / "r"),
            "--pipeline",
            str(pipe),
            "--cases",
            "0",
            "--no-throughput",
        ]
    )
    text = (tmp_path / "r" / "report.html").read_text()
    assert "gated vs segmenter alone" in text and "FP pixels on" in text
