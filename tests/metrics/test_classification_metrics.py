"""Classification metrics against a 3-class example worked out by hand.

Seven samples (targets 0,0,1,1,2,2,2); predictions 0,1,1,2,2,2,1, so

    confusion (rows true)  [[1,1,0],[0,1,1],[0,1,2]]
    precision  1, 1/3, 2/3      recall 1/2, 1/2, 2/3      support 2, 2, 3
    f1         2/3, 2/5, 2/3

Every confidence falls in its own 1/15-wide bin, so ECE = mean |correct - conf|.
AUROC per class counts positive-above-negative pairs: 9/10, 8/10, 11/12.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from braintumor.metrics.classification import (
    auroc_binary,
    classification_metrics,
    expected_calibration_error,
)

PROBS = np.array(
    [
        [0.70, 0.20, 0.10],
        [0.25, 0.65, 0.10],
        [0.10, 0.75, 0.15],
        [0.20, 0.30, 0.50],
        [0.05, 0.10, 0.85],
        [0.04, 0.06, 0.90],
        [0.30, 0.45, 0.25],
    ]
)
TARGETS = np.array([0, 0, 1, 1, 2, 2, 2])
NAMES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def m() -> dict:
    return classification_metrics(PROBS, TARGETS, NAMES)


def test_counts_and_rates(m: dict) -> None:
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 1], [0, 1, 2]]
    assert m["accuracy"] == pytest.approx(4 / 7)
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 1 / 2 + 2 / 3) / 3)
    assert m["precision_macro"] == pytest.approx((1 + 1 / 3 + 2 / 3) / 3)
    assert m["recall_macro"] == pytest.approx((1 / 2 + 1 / 2 + 2 / 3) / 3)
    assert m["f1_macro"] == pytest.approx((2 / 3 + 2 / 5 + 2 / 3) / 3)
    assert m["f1_weighted"] == pytest.approx((2 * 2 / 3 + 2 * 2 / 5 + 3 * 2 / 3) / 7)


def test_per_class(m: dict) -> None:
    b = m["per_class"]["b"]
    assert b == pytest.approx({"precision": 1 / 3, "recall": 1 / 2, "f1": 2 / 5, "support": 2})
    assert m["per_class"]["c"]["support"] == 3


def test_calibration_and_auroc(m: dict) -> None:
    assert m["confidence"] == pytest.approx(4.8 / 7)
    # |1-.70| + .65 + |1-.75| + .50 + |1-.85| + |1-.90| + .45 = 2.4
    assert m["ece"] == pytest.approx(2.4 / 7)
    assert m["auroc_macro"] == pytest.approx((9 / 10 + 8 / 10 + 11 / 12) / 3)


def test_auroc_ties_and_single_class() -> None:
    assert auroc_binary(np.array([0.5, 0.5]), np.array([1, 0])) == pytest.approx(0.5)
    assert auroc_binary(np.array([0.2, 0.9, 0.4]), np.array([0, 1, 0])) == pytest.approx(1.0)
    assert math.isnan(auroc_binary(np.array([0.2, 0.3]), np.array([1, 1])))


def test_absent_class_is_nan_safe() -> None:
    # Class "c" never occurs and is never predicted: it is left out of the macro
    # averages and of AUROC instead of dragging them to 0 or NaN.
    probs = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    m = classification_metrics(probs, np.array([0, 1, 0, 1]), NAMES)
    assert m["accuracy"] == 1.0 and m["f1_macro"] == 1.0 and m["balanced_accuracy"] == 1.0
    assert m["auroc_macro"] == 1.0
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    only_one = classification_metrics(probs, np.zeros(4, dtype=int), NAMES)
    assert math.isnan(only_one["auroc_macro"])
    assert only_one["balanced_accuracy"] == pytest.approx(0.5)  # 2 of 4 class-a samples right


def test_ece_perfectly_calibrated_bins() -> None:
    conf = np.array([0.75, 0.75, 0.75, 0.75])
    assert expected_calibration_error(conf, np.array([1, 1, 1, 0])) == pytest.approx(0.0)


def test_shape_errors() -> None:
    with pytest.raises(ValueError, match="N x 3"):
        classification_metrics(np.ones((2, 2)), np.array([0, 1]), NAMES)
    with pytest.raises(ValueError, match="targets"):
        classification_metrics(PROBS, np.array([0, 1, 5, 0, 0, 0, 0]), NAMES)
