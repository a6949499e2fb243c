"""Predictor: the run's geometry applied forward and inverted exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from braintumor.inference.predictor import Predictor, padding_box
from braintumor.models.registry import create_model
from tests.inference._cards import card_for


class _Sharpen(nn.Module):
    """Segmenter whose probability is ~ the first input channel thresholded at 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 200.0 * (x[:, :1] - 0.5)


@pytest.mark.parametrize("size", [30, 64, 16])
def test_segmentation_probs_map_back_onto_the_input(size: int) -> None:
    h, w = 20, 30
    image = np.zeros((1, h, w), np.float32)
    image[0, 4:14, 6:22] = 1.0  # a 10 x 16 block, off-centre
    pred = Predictor(_Sharpen(), card_for("segmentation", "x", 1, 1, size), device="cpu")
    probs = pred.predict_images([image])[0]
    assert probs.shape == (1, h, w)
    mask = pred.masks(probs)[0]
    if size == 30:  # no resizing: the inversion must be exact
        assert np.array_equal(mask, image[0].astype(np.uint8))
    else:  # resampling blurs only the block's border
        assert (mask != image[0]).mean() < 0.08
        assert mask[6:12, 8:20].all() and not mask[16:, :].any()


def test_padding_box_matches_pad_to_square() -> None:
    assert padding_box(20, 30) == (5, 0, 20, 30)
    assert padding_box(31, 10) == (0, 10, 31, 10)


class _Recorder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return 200.0 * (x[:, :1] - 0.5)


def test_predict_volume_slices_like_the_volume_formats() -> None:
    rng = np.random.default_rng(0)
    vol = (rng.random((12, 8, 5)) > 0.5).astype(np.float32)  # X x Y x Z, not square
    rec = _Recorder()
    pred = Predictor(rec, card_for("segmentation", "x", 1, 1, 12), device="cpu")
    probs = pred.predict_volume(vol, batch_size=2)
    assert probs.shape == (1, 12, 8, 5)
    assert np.array_equal(pred.masks(probs)[0], vol.astype(np.uint8))
    # Slice z=0 as the model saw it: H x W = Y x X (BraTS: volume[:, :, z].T), padded
    # top and bottom from 8 to 12 rows.
    first = torch.cat(rec.seen)[0, 0].numpy()
    assert np.array_equal(first[2:10, :], vol[:, :, 0].T)


def test_classification_predictor_returns_probabilities() -> None:
    torch.manual_seed(0)
    model = create_model("simple_cnn", in_channels=1, num_classes=3)
    pred = Predictor(model, card_for("classification", "simple_cnn", 1, 3, 32), device="cpu")
    images = [np.random.default_rng(i).random((3, 40 + i, 50)).astype(np.float32) for i in range(3)]
    probs = pred.predict_images(images, batch_size=2)
    assert probs.shape == (3, 3)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("h", "w", "c", "channels"), [(20, 30, 1, 1), (31, 10, 1, 3), (16, 16, 3, 1)]
)
def test_batched_preparation_equals_one_slice_at_a_time(
    h: int, w: int, c: int, channels: int
) -> None:
    card = card_for("segmentation", "x", channels, 1, 24)
    pred = Predictor(_Sharpen(), card, device="cpu")
    rng = np.random.default_rng(0)
    images = [rng.random((c, h, w)).astype(np.float32) for _ in range(3)]
    one_by_one = np.stack([pred.preprocess(im) for im in images])
    assert np.array_equal(pred.spec.prepare_chunk(images), one_by_one)
    probs = torch.rand(3, 1, 24, 24)
    from braintumor.inference.predictor import to_original_grid

    want = [to_original_grid(p, h, w) for p in probs]
    assert all(
        np.array_equal(a, b) for a, b in zip(pred._restore(images, probs), want, strict=True)
    )
