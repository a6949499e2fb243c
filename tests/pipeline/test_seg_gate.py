"""Detection read off the segmenter follows its threshold."""

from __future__ import annotations

import numpy as np
import pytest

from braintumor.errors import ConfigError
from braintumor.pipeline.core import TwoStagePipeline
from braintumor.pipeline.seg_gate import SegmenterGate, detection_score, gate_score


class FixedSegmenter:
    """Returns the given probability maps, one per input image."""

    is_classification = False
    names = ["tumor"]
    threshold = 0.5
    card = {"task": "segmentation", "normalisation": {"intensity": "unit"}}

    def __init__(self, maps: list[np.ndarray]) -> None:
        self.maps = maps

    def predict_images(self, images: list[np.ndarray], batch_size: int = 16) -> list[np.ndarray]:
        return [self.maps[int(im.flat[0])] for im in images]

    def masks(self, probs: np.ndarray) -> np.ndarray:
        return (probs > self.threshold).astype(np.uint8)


def test_scores() -> None:
    p = np.zeros((1, 4, 4))
    p[0, 0, :2] = [0.9, 0.7]
    assert detection_score(p, "max") == pytest.approx(0.9)
    assert detection_score(p, "area") == pytest.approx(2 / 16)
    with pytest.raises(ConfigError):
        detection_score(p, "mean")
    assert gate_score("segmenter") == "max" and gate_score("segmenter-area") == "area"
    assert gate_score("runs/cls") is None


@pytest.mark.parametrize(("threshold", "kept"), [(0.5, [True, True]), (0.8, [True, False])])
def test_decision_follows_the_threshold(threshold: float, kept: list[bool]) -> None:
    strong, weak = np.zeros((1, 4, 4)), np.zeros((1, 4, 4))
    strong[0, 1, 1], weak[0, 2, 2] = 0.9, 0.6
    seg = FixedSegmenter([strong, weak])
    pipe = TwoStagePipeline(SegmenterGate(seg, "max"), seg, threshold)
    images = [np.full((1, 4, 4), i, np.float32) for i in range(2)]
    results = pipe.predict(images)
    assert [r.mask.any() for r in results] == kept
    assert [r.raw_mask.any() for r in results] == [True, True]


def test_a_volume_reaches_the_segmenter_and_its_gate_as_one_volume() -> None:
    """2.5D neighbours come from the volume (not each slice's own FLAIR), chunks or not,
    and the segmenter gate reuses those probabilities instead of a second pass."""
    import numpy as np
    import torch

    from braintumor.inference.predictor import Predictor
    from braintumor.pipeline.core import TwoStagePipeline
    from braintumor.pipeline.seg_gate import SegmenterGate
    from tests.inference._cards import Recorder, card_for

    card = card_for("segmentation", "x", 5, 1, 8)
    card["preprocessing"].update(channels=3, neighbours=1)
    card["data"]["spec"] = "lgg:/data"  # FLAIR is channel 1
    rec = Recorder(channel=1)
    seg = Predictor(rec, card, device="cpu")
    pipe = TwoStagePipeline(SegmenterGate(seg), seg, threshold=0.5)
    slices = [np.full((3, 8, 8), 0.1 * (z + 1), np.float32) for z in range(5)]
    results = pipe.predict(slices, batch_size=2, volume=True)
    assert len(results) == 5 and len(rec.seen) == 3  # one pass over the volume, 3 batches
    x = torch.cat(rec.seen)
    assert not torch.equal(x[:, 3], x[:, 1])  # slice below is another slice's FLAIR


def test_the_gate_reports_the_segmenters_intensity_scale() -> None:
    """``pipeline --evaluate --classifier segmenter`` reads the gate's scale."""
    from braintumor.pipeline.seg_gate import SegmenterGate
    from tests.pipeline._stubs import StubSegmenter

    seg = StubSegmenter(spec="brats")
    seg.card = {"task": "segmentation"}
    assert SegmenterGate(seg).intensity == seg.intensity == "zscore"


def test_default_threshold_is_the_cards_val_choice_or_any_pixel() -> None:
    from braintumor.pipeline.seg_gate import ANY_PIXEL, default_threshold

    chosen = {"inference": {"tta": False, "min_component_voxels": 40, "gate_area": 0.002}}
    assert default_threshold(chosen, "area") == 0.002
    assert default_threshold({"inference": {"gate_area": None}}, "area") == ANY_PIXEL
    assert default_threshold({}, "area") == ANY_PIXEL  # a run from before the gate lever
    assert default_threshold(chosen, "max") == 0.5


def test_any_pixel_gate_is_the_segmenter_alone() -> None:
    from braintumor.pipeline.seg_gate import ANY_PIXEL

    one, none = np.zeros((1, 64, 64)), np.zeros((1, 64, 64))
    one[0, 3, 3] = 0.9  # a single pixel: its own slice's area is 1/4096
    seg = FixedSegmenter([one, none])
    pipe = TwoStagePipeline(SegmenterGate(seg, "area"), seg, ANY_PIXEL)
    results = pipe.predict([np.full((1, 64, 64), i, np.float32) for i in range(2)])
    assert [r.kept for r in results] == [True, False]
    assert all(np.array_equal(r.mask, r.raw_mask) for r in results)


def test_pipeline_without_classifier_uses_the_segmenters_val_gate(tmp_path, monkeypatch) -> None:
    from braintumor.inference import predictor as predictor_mod

    seg = FixedSegmenter([np.zeros((1, 4, 4))])
    seg.card = {**seg.card, "inference": {"gate_area": 0.004}}
    monkeypatch.setattr(predictor_mod.Predictor, "from_run", classmethod(lambda c, *a, **k: seg))
    pipe = TwoStagePipeline.from_runs(None, tmp_path, None)
    assert isinstance(pipe.classifier, SegmenterGate) and pipe.classifier.score == "area"
    assert pipe.threshold == 0.004
    assert TwoStagePipeline.from_runs("segmenter-area", tmp_path, 0.01).threshold == 0.01
    assert TwoStagePipeline.from_runs("segmenter", tmp_path, None).threshold == 0.5  # max
