"""Segmentation metrics against hand-computed masks, empty cases, HD95 and aggregation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.metrics import compute_hausdorff_distance

from braintumor.metrics import (
    SegmentationEvaluator,
    brats_regions,
    confusion_counts,
    hd95,
    logits_to_masks,
    scores_from_counts,
)

# 4x4 example: tp = 3, fp = 1, fn = 2, tn = 10
TRUTH = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=np.uint8)
PRED = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=np.uint8)


def _square(size: int, top: int, left: int, side: int) -> np.ndarray:
    m = np.zeros((size, size), dtype=bool)
    m[top : top + side, left : left + side] = True
    return m


def test_counts_and_scores_by_hand() -> None:
    counts = confusion_counts(PRED, TRUTH)
    assert counts.tolist() == [3, 1, 2, 10]
    s = {k: float(v) for k, v in scores_from_counts(counts).items()}
    assert s["dice"] == pytest.approx(6 / 9)
    assert s["iou"] == pytest.approx(3 / 6)
    assert s["miou"] == pytest.approx((3 / 6 + 10 / 13) / 2)
    assert s["pixel_accuracy"] == pytest.approx(13 / 16)
    assert s["precision"] == pytest.approx(3 / 4)
    assert s["recall"] == pytest.approx(3 / 5)
    assert s["fpr"] == pytest.approx(1 / 11)
    assert s["fnr"] == pytest.approx(2 / 5)


def test_empty_mask_conventions() -> None:
    empty, blob = np.zeros((4, 4), np.uint8), TRUTH
    both = {k: float(v) for k, v in scores_from_counts(confusion_counts(empty, empty)).items()}
    assert both["dice"] == both["iou"] == both["precision"] == both["recall"] == 1.0
    assert both["fpr"] == both["fnr"] == 0.0 and hd95(empty, empty) == 0.0
    fp_only = {k: float(v) for k, v in scores_from_counts(confusion_counts(blob, empty)).items()}
    assert fp_only["dice"] == fp_only["iou"] == fp_only["precision"] == 0.0
    assert math.isnan(fp_only["recall"]) and math.isnan(fp_only["fnr"])
    missed = {k: float(v) for k, v in scores_from_counts(confusion_counts(empty, blob)).items()}
    assert missed["dice"] == missed["iou"] == missed["recall"] == 0.0
    assert math.isnan(missed["precision"]) and missed["fnr"] == 1.0
    assert math.isnan(hd95(blob, empty)) and math.isnan(hd95(empty, blob))
    assert hd95(empty, blob, empty="diagonal") == pytest.approx(math.hypot(4, 4))


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_hd95_of_offset_squares_is_the_offset(k: int) -> None:
    a = _square(32, 8, 8, 12)
    assert hd95(a, _square(32, 8, 8 + k, 12)) == pytest.approx(k)
    assert hd95(a, _square(32, 8 + k, 8, 12)) == pytest.approx(k)
    assert hd95(a, _square(32, 8, 8 + k, 12), spacing=(1.0, 0.5)) == pytest.approx(k * 0.5)
    assert hd95(a, _square(32, 8 + k, 8, 12), spacing=(2.0, 0.5)) == pytest.approx(k * 2.0)


# MONAI warns about its own internal use of a deprecated argument; not ours to fix.
@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy:FutureWarning")
def test_hd95_matches_monai() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = _square(40, *rng.integers(2, 20, 2), 12) | _square(40, *rng.integers(2, 30, 2), 5)
        b = _square(40, *rng.integers(2, 20, 2), 15)
        ref = compute_hausdorff_distance(
            torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None], percentile=95
        )
        assert hd95(a, b) == pytest.approx(float(ref), abs=1e-4)


def test_evaluator_per_patient_differs_from_per_image() -> None:
    # Patient A: a large tumour found exactly, and a 2x2 tumour missed on another slice.
    big, small = _square(16, 2, 2, 10), _square(16, 12, 12, 2)
    empty = np.zeros((16, 16), bool)
    pred = np.stack([big, empty])[:, None]
    truth = np.stack([big, small])[:, None]
    ev = SegmentationEvaluator(["tumor"])
    ev.update(pred, truth, ["A", "A"])
    r = ev.compute()
    assert r["dice"] == pytest.approx(0.5)  # per image: (1 + 0) / 2
    assert r["dice_per_patient_mean"] == pytest.approx(200 / 204)  # 2*100 / (2*100 + 4)
    assert r["iou_per_patient_mean"] == pytest.approx(100 / 104)
    assert r["n"] == 2 and r["n_patients"] == 1
    assert r["hd95"] == 0.0 and r["undefined"]["hd95"] == 1  # the missed slice is excluded
    assert r["per_channel"]["tumor"]["empty"] == {"both": 0, "truth_only": 0, "prediction_only": 1}
    assert r["undefined"]["precision"] == 1 and r["precision"] == 1.0
    assert set(r["aggregation"]) >= {"per_image", "per_patient", "channels", "hd95"}
    assert r["per_patient"] == {"A": {"n_slices": 2, "dice_tumor": pytest.approx(200 / 204)}}


def test_evaluator_lists_patients_only_when_ids_are_given() -> None:
    sq = _square(8, 1, 1, 3)[None, None]
    ev = SegmentationEvaluator(["tumor"])
    ev.update(sq, sq)
    assert "per_patient" not in ev.compute()


def test_evaluator_channels_batches_and_reset() -> None:
    rng = np.random.default_rng(1)
    pred = rng.random((6, 2, 8, 8)) > 0.5
    truth = rng.random((6, 2, 8, 8)) > 0.5
    ev = SegmentationEvaluator(["WT", "ET"], spacing=(1.0, 1.0), hd95_empty="diagonal")
    ev.update(torch.from_numpy(pred[:4]), torch.from_numpy(truth[:4]), list("aabb"))
    ev.update(pred[4:].astype(np.uint8), truth[4:].astype(np.float32), ["c", "c"])
    r = ev.compute()
    dice = scores_from_counts(confusion_counts(pred, truth))["dice"]  # 6 x 2
    assert r["per_channel"]["WT"]["dice"] == pytest.approx(dice[:, 0].mean())
    assert r["per_channel"]["ET"]["dice"] == pytest.approx(dice[:, 1].mean())
    assert r["dice"] == pytest.approx(dice.mean())  # equal image counts per channel
    assert r["n"] == 6 and r["n_patients"] == 3 and r["channels"] == ["WT", "ET"]
    assert len(ev.per_image()) == 6
    ev.reset()
    with pytest.raises(ValueError, match="before any update"):
        ev.compute()


def test_evaluator_rejects_bad_input() -> None:
    ev = SegmentationEvaluator(["tumor"])
    with pytest.raises(ValueError, match="binary"):
        ev.update(np.full((1, 1, 4, 4), 0.7), np.zeros((1, 1, 4, 4)), ["p"])
    with pytest.raises(ValueError, match="B x 1 x H x W"):
        ev.update(np.zeros((1, 2, 4, 4)), np.zeros((1, 2, 4, 4)), ["p"])
    with pytest.raises(ValueError, match="patient ids"):
        ev.update(np.zeros((2, 1, 4, 4)), np.zeros((2, 1, 4, 4)), ["p"])


def test_brats_regions() -> None:
    labels = np.zeros((3, 1, 4), np.uint8)  # NCR, ED, ET along 4 pixels
    labels[0, 0, 0] = labels[1, 0, 1] = labels[2, 0, 2] = 1
    regions = brats_regions(labels)
    assert regions[:, 0].tolist() == [[1, 1, 1, 0], [1, 0, 1, 0], [0, 0, 1, 0]]  # WT, TC, ET
    as_tensor = brats_regions(torch.from_numpy(labels)[None])
    assert torch.equal(as_tensor[0], torch.from_numpy(regions))


def test_logits_to_masks() -> None:
    logits = torch.tensor([[[[2.0, -1.0]], [[0.0, 3.0]], [[1.0, 0.0]]]])  # 1 x 3 x 1 x 2
    assert logits_to_masks(logits, "multilabel").tolist() == [[[[1, 0]], [[0, 1]], [[1, 0]]]]
    # multiclass: pixel 0 -> class 0 (background, dropped), pixel 1 -> class 1
    assert logits_to_masks(logits, "multiclass").tolist() == [[[[0, 1]], [[0, 0]]]]
