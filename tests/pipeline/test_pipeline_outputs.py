"""Findings per input (masks, overlays, JSON) and gated-vs-un-gated scoring, with stubs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from braintumor.data.base import DatasetFormat, Record
from braintumor.data.io import write_nifti
from braintumor.figures.overlay import PALETTE
from braintumor.inference.scans import load_input
from braintumor.pipeline import TwoStagePipeline
from braintumor.pipeline.evaluate import edge_errors, format_table, score_pipeline
from braintumor.pipeline.run import process_input
from tests.pipeline._stubs import FOUR, StubClassifier, StubSegmenter


def _pipe(threshold: float = 0.5) -> TwoStagePipeline:
    # The classifier is sure there is a tumor when the slice has any bright pixel.
    def probs(im: np.ndarray) -> list[float]:
        p = 0.9 if im.max() > 0.5 else 0.1
        return [p / 3, p / 3, 1 - p, p / 3]

    return TwoStagePipeline(StubClassifier(FOUR, probs_fn=probs), StubSegmenter(), threshold)


def test_volume_findings_keep_geometry_and_measure_ml(tmp_path: Path) -> None:
    vol = np.zeros((20, 16, 6), np.float32)  # X x Y x Z
    vol[4:10, 3:7, 2:4] = 1.0  # 6 x 4 x 2 = 48 voxels of "tumor"
    vol += 0.1
    affine = np.diag([0.5, 0.5, 2.0, 1.0])
    scan = load_input(write_nifti(tmp_path / "case.nii.gz", vol, affine))
    summary = process_input(_pipe(), scan, tmp_path / "out", show_progress=False)
    mask = nib.load(tmp_path / "out" / "case_mask.nii.gz")
    np.testing.assert_allclose(mask.affine, affine)
    np.testing.assert_array_equal(np.asarray(mask.dataobj), (vol > 0.5).astype(np.uint8))
    assert summary["slices_with_tumor"] == [2, 3]
    assert summary["tumor_voxels"]["any"] == 48
    assert summary["tumor_volume_ml"]["any"] == pytest.approx(48 * 0.5 * 0.5 * 2 / 1000)
    assert summary["bbox"] == {
        "x_min": 4,
        "y_min": 3,
        "x_max": 9,
        "y_max": 6,
        "z_min": 2,
        "z_max": 3,
    }
    assert summary["class"] == "glioma" and summary["tumor_probability"] == pytest.approx(0.9)
    assert [s["gate"] for s in summary["per_slice"]] == ["emptied"] * 2 + ["kept"] * 2 + [
        "emptied"
    ] * 2
    saved = json.loads((tmp_path / "out" / "case.json").read_text())
    assert saved["tumor_voxels"] == summary["tumor_voxels"]
    for name in ("case_montage.png", "case_largest.png"):
        with Image.open(tmp_path / "out" / name) as im:
            assert im.mode in ("RGB", "RGBA") and min(im.size) > 50


def test_image_findings_are_gated(tmp_path: Path) -> None:
    arr = np.zeros((12, 20), np.uint8)
    arr[2:5, 3:9] = 200  # 18 pixels
    Image.fromarray(arr).save(tmp_path / "slice.png")
    scan = load_input(tmp_path / "slice.png")
    kept = process_input(_pipe(0.5), scan, tmp_path / "a", show_progress=False)
    assert kept["gate"] == "kept" and kept["tumor_area_px"]["any"] == 18
    assert kept["tumor_area_mm2"] is None  # a PNG does not know its pixel size
    assert kept["bbox"] == {"x_min": 3, "y_min": 2, "x_max": 8, "y_max": 4}
    emptied = process_input(_pipe(0.95), scan, tmp_path / "b", show_progress=False)
    assert emptied["gate"] == "emptied" and emptied["tumor_area_px"]["any"] == 0
    assert emptied["segmenter_pixels_before_gate"] == 18
    with Image.open(tmp_path / "b" / "slice_mask.png") as im:
        assert im.size == (20, 12) and np.asarray(im).max() == 0
    # The kept finding's overlay shows the tumor colour; the emptied one's only the legend.
    red = np.asarray(PALETTE["tumor"], np.uint8)
    for folder, least in (("a", 18 * 4), ("b", 0)):
        with Image.open(tmp_path / folder / "slice_overlay.png") as im:
            page = np.asarray(im.convert("RGB"))
        body = page[35:-35]  # between the title and the legend bands
        tinted = (body[..., 0].astype(int) - body[..., 1] > 60).sum()
        assert (tinted >= least) if least else tinted == 0
        assert ((page[-35:] == red).all(axis=-1)).any()  # the legend swatch


class _Crafted(DatasetFormat):
    """Four slices of two patients with known truth (channel 0: what the stub segments)."""

    name = "crafted"
    description = "test"
    needs_path = False
    tasks = ("segmentation",)

    @property
    def classes(self) -> list[str]:
        return ["no", "yes"]

    @property
    def mask_channels(self) -> list[str]:
        return ["tumor"]

    def records(self) -> list[Record]:
        return [Record(f"s{i}", f"p{i // 2}") for i in range(4)]

    def load(self, rec: Record) -> dict[str, Any]:
        i = int(rec.path[1])
        img, mask = np.zeros((1, 8, 8), np.float32), np.zeros((1, 8, 8), np.uint8)
        if i in (0, 2):
            mask[0, 2:4, 2:6] = 1
            img[0, 2:4, 2:6] = 1.0 if i == 0 else 0.6  # slice 2: faint, a strict gate misses it
        if i == 1:  # healthy, one bright pixel: a segmenter false positive
            img[0, 6, 6] = 0.55
        if i == 3:  # healthy, nothing above any threshold
            img[0, 5, 5] = 0.3
        return self._sample(rec, img, mask)


def test_scores_count_false_positives_and_wrongly_emptied_slices() -> None:
    fmt = _Crafted()
    clf = StubClassifier(
        ["no", "yes"], probs_fn=lambda im: [0.0, 1.0] if im.max() > 0.58 else [1.0, 0.0]
    )
    pipe = TwoStagePipeline(clf, StubSegmenter(), threshold=0.5)
    res = score_pipeline(pipe, fmt, fmt.records(), batch=3)
    assert res["n_tumor_slices"] == 2 and res["n_healthy_slices"] == 2
    u, g = res["ungated"], res["gated"]
    assert u["fp_pixels_healthy"] == 1 and u["fp_slices_healthy"] == 1
    assert g["fp_pixels_healthy"] == 0 and g["fp_slices_healthy"] == 0
    # The gate (max > 0.58) removes the false positive of slice 1 and keeps both tumors.
    assert res["gate"]["tumor_slices_wrongly_emptied"] == 0
    assert u["dice"] == pytest.approx((1 + 0 + 1 + 1) / 4)  # healthy FP slice scores 0
    assert g["dice"] == pytest.approx(1.0)
    assert res["gate"]["specificity"] == pytest.approx(1.0)
    assert res["gate"]["balanced_accuracy"] == pytest.approx(1.0)
    # Detection by the output masks: the false positive makes slice 1 "tumor" un-gated.
    assert u["detection"] == {
        "sensitivity": 1.0,
        "specificity": 0.5,
        "balanced_accuracy": 0.75,
        "tumor_slices_missed": 0,
        "healthy_slices_flagged": 1,
        "missed_at_tumor_ends": 0,  # single slices, not volumes: no ends to be at
        "flagged_next_to_tumor": 0,
    }
    assert g["detection"]["balanced_accuracy"] == pytest.approx(1.0)
    # A stricter gate empties the faint tumor slice although the segmenter found it.
    strict = TwoStagePipeline(
        StubClassifier(
            ["no", "yes"], probs_fn=lambda im: [0.0, 1.0] if im.max() > 0.9 else [1.0, 0.0]
        ),
        StubSegmenter(),
        0.5,
    )
    res = score_pipeline(strict, fmt, fmt.records())
    assert res["gate"]["tumor_slices_wrongly_emptied"] == 1
    assert res["gate"]["wrongly_emptied_where_segmenter_found_tumor"] == 1
    assert res["gated"]["dice"] == pytest.approx(3 / 4)
    assert res["gated"]["dice_per_patient_mean"] == pytest.approx((1 + 0) / 2)
    table = format_table(
        {
            **res,
            "threshold": 0.5,
            "n_images": 4,
            "n_patients": 2,
            "split": "test",
            "split_source": "a test",
        }
    )
    assert "tumor slices the gate emptied (of 2)" in table and "segmenter alone" in table
    assert "tumor slices with an empty mask (of 2)" in table


def test_edge_errors_place_detection_errors_along_the_volume() -> None:
    truth = [False, False, True, True, True, True, True, False, False, False, False]
    called = [False, True, False, True, True, False, False, True, False, False, True]
    # Missed: slices 2 (first tumor slice), 5 and 6 (the last two); flagged healthy:
    # slice 1 (next to the tumor), 7 (next to it) and 10 (4 slices away: not counted).
    assert edge_errors(truth, called) == (3, 2)
    assert edge_errors(truth, called, within=1) == (2, 2)
    # A miss in the middle of a long tumor is not at its ends.
    long = [True] * 9
    assert edge_errors(long, [True] * 4 + [False] + [True] * 4) == (0, 0)
    # A tumor-free volume: its flagged slices are not "next to the tumor".
    assert edge_errors([False] * 4, [True] * 4) == (0, 0)


class _Volume(_Crafted):
    """One patient's 6-slice volume: tumor on slices 1-4 (slice 4 faint), healthy 0 and 5."""

    def records(self) -> list[Record]:
        return [Record("vol", "p0", extra={"slice": i}) for i in range(6)]

    def load(self, rec: Record) -> dict[str, Any]:
        i = int(rec.extra["slice"])
        img, mask = np.zeros((1, 8, 8), np.float32), np.zeros((1, 8, 8), np.uint8)
        if 1 <= i <= 4:
            mask[0, 2:4, 2:6] = 1
            img[0, 2:4, 2:6] = 0.4 if i == 4 else 1.0  # the stub misses the faint last slice
        if i == 0:
            img[0, 6, 6] = 0.9  # a false positive just before the tumor
        return self._sample(rec, img, mask)


def test_detection_errors_at_the_tumor_ends_are_counted_per_volume() -> None:
    fmt = _Volume()
    pipe = TwoStagePipeline(StubClassifier(["no", "yes"], [0.0, 1.0]), StubSegmenter(), 0.5)
    det = score_pipeline(pipe, fmt, fmt.records())["ungated"]["detection"]
    assert det["tumor_slices_missed"] == 1 and det["missed_at_tumor_ends"] == 1
    assert det["healthy_slices_flagged"] == 1 and det["flagged_next_to_tumor"] == 1


def test_fresh_patient_split_when_the_data_differs(tmp_path: Path) -> None:
    from braintumor.config import Config
    from braintumor.data import create_format
    from braintumor.pipeline.evaluate import choose_split

    records = create_format("synthetic", n_patients=12, slices_per_patient=2, size=16).records()
    card = {"data": {"spec": "lgg:/elsewhere"}}
    chosen, source = choose_split(tmp_path, card, Config(), "synthetic", records, "test")
    assert "fresh patient split" in source and "trained on other data" in source
    patients = {r.patient_id for r in chosen}
    assert chosen and len(patients) < 12
    assert {r.key for r in records if r.patient_id in patients} == {r.key for r in chosen}
