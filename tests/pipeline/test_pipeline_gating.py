"""The gate: tumor probability = 1 - P(no tumor); below the threshold the mask is empty."""

from __future__ import annotations

import numpy as np
import pytest

from braintumor.errors import ConfigError
from braintumor.pipeline import TwoStagePipeline, no_tumor_index, tumor_probability
from tests.pipeline._stubs import FOUR, StubClassifier, StubSegmenter


def _image() -> np.ndarray:
    img = np.zeros((1, 16, 16), np.float32)
    img[0, 4:9, 5:12] = 0.9  # the "tumor" the stub segmenter finds
    return img


@pytest.mark.parametrize(
    ("classes", "index"),
    [
        (FOUR, 2),
        (["no_tumor", "tumor"], 0),
        (["yes", "no"], 1),
        (["Normal", "abnormal"], 0),
        (["tumor", "No Tumor"], 1),
    ],
)
def test_no_tumor_class_found_by_name(classes: list[str], index: int) -> None:
    assert no_tumor_index(classes) == index


def test_classes_without_no_tumor_class_are_refused() -> None:
    with pytest.raises(ConfigError, match="no 'no tumor' class"):
        no_tumor_index(["glioma", "meningioma"])
    with pytest.raises(ConfigError, match="no 'no tumor' class"):
        TwoStagePipeline(StubClassifier(["cat", "dog"], [0.5, 0.5]), StubSegmenter())


def test_four_class_tumor_probability_sums_every_tumor_class() -> None:
    # No single tumor class beats "notumor" (0.4), yet the slice is 60% likely a tumor.
    probs = np.array([[0.2, 0.2, 0.4, 0.2], [0.0, 0.0, 1.0, 0.0]])
    np.testing.assert_allclose(tumor_probability(probs, FOUR), [0.6, 0.0])


@pytest.mark.parametrize(("threshold", "kept"), [(0.5, True), (0.59, True), (0.61, False)])
def test_gate_keeps_or_empties_the_segmenter_mask(threshold: float, kept: bool) -> None:
    clf = StubClassifier(FOUR, [0.2, 0.2, 0.4, 0.2])  # tumor probability 0.6
    pipe = TwoStagePipeline(clf, StubSegmenter(), threshold=threshold)
    img = _image()
    (r,) = pipe.predict([img])
    expected = (img[:1] > 0.5).astype(np.uint8)
    np.testing.assert_array_equal(r.raw_mask, expected)  # the segmenter ran either way
    assert r.kept is kept
    assert r.tumor_prob == pytest.approx(0.6)
    if kept:
        np.testing.assert_array_equal(r.mask, expected)
    else:
        assert r.mask.shape == expected.shape and not r.mask.any()


def test_gate_decides_per_slice_in_a_batch() -> None:
    # Channel 0 is what the stub segmenter thresholds; the stub classifier reads its
    # tumor probability from channel 1.
    clf = StubClassifier(["no", "yes"], probs_fn=lambda im: [1 - im[1, 0, 0], im[1, 0, 0]])
    pipe = TwoStagePipeline(clf, StubSegmenter(["NCR", "ED", "ET"]), threshold=0.5)
    images = [
        np.concatenate([_image(), np.full((1, 16, 16), p, np.float32)]) for p in (0.8, 0.3, 0.2)
    ]
    results = pipe.predict(images, batch_size=2)
    assert [r.kept for r in results] == [True, False, False]
    assert results[0].mask.shape == (3, 16, 16) and results[0].mask.sum() == 3 * 35
    assert results[1].raw_mask.sum() == 3 * 35 and not results[1].mask.any()
    assert clf.calls == 2  # batched: 2 + 1 slices


def test_roles_and_threshold_are_checked() -> None:
    seg, clf = StubSegmenter(), StubClassifier(FOUR, [0.25] * 4)
    with pytest.raises(ConfigError, match="--classifier must be a classification run"):
        TwoStagePipeline(seg, seg)
    with pytest.raises(ConfigError, match="--segmenter must be a segmentation run"):
        TwoStagePipeline(clf, clf)
    with pytest.raises(ConfigError, match=r"--threshold must be in \[0, 1\]"):
        TwoStagePipeline(clf, seg, threshold=1.5)
