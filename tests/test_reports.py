"""Comparison reports from two tiny trained runs; overlays drawn in the right colours."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from braintumor.config import load_config
from braintumor.reports.overlay import PALETTE, overlay_rgb, save_overlay

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


def test_overlay_colours_regions_and_keeps_size(tmp_path: Path) -> None:
    img = np.linspace(0, 1, 40 * 30, dtype=np.float32).reshape(1, 40, 30)
    mask = np.zeros((3, 40, 30), np.uint8)
    mask[0, 5:25, 5:25] = 1  # WT
    mask[1, 10:20, 10:20] = 1  # TC (inside WT)
    mask[2, 13:17, 13:17] = 1  # ET (inside TC)
    rgb = overlay_rgb(img, mask, ["WT", "TC", "ET"])
    assert rgb.shape == (40, 30, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[5, 10]) == PALETTE["WT"]  # outline pixel: the solid colour
    assert tuple(rgb[13, 15]) == PALETTE["ET"]  # inner regions drawn last stay visible
    assert tuple(rgb[35, 2]) == (round(rgb[35, 2, 0]),) * 3  # outside: gray
    path = save_overlay(img, mask, tmp_path / "o.png", ["WT", "TC", "ET"], title="case")
    assert path.is_file() and path.stat().st_size > 500
