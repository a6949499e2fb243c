"""InputSpec: the card's preprocessing, applied to new images as training applied it."""

from __future__ import annotations

import numpy as np
import pytest

from braintumor.errors import DataError
from braintumor.inference.preprocessing import InputSpec
from tests.inference._cards import card_for


def _spec(neighbours: int = 0, per_volume: bool = False, channels: int = 3) -> InputSpec:
    card = card_for("segmentation", "x", channels + 2 * neighbours, 1, 16)
    card["preprocessing"].update(channels=channels, neighbours=neighbours)
    card["normalisation"]["per_volume"] = per_volume
    card["data"] = {"spec": "lgg:/x"}
    return InputSpec.from_card(card)


def test_from_card_reads_geometry_neighbours_and_the_format_flair_channel() -> None:
    spec = _spec(neighbours=1, per_volume=True)
    assert (spec.image_size, spec.channels, spec.crop) == (16, 3, False)
    assert spec.neighbours == 1 and spec.per_volume
    assert spec.flair_channel == 1  # lgg: pre-contrast, FLAIR, post-contrast


def test_gray_and_rgb_convert_other_channel_counts_do_not() -> None:
    spec = _spec(channels=3)
    assert spec.accepts(3) and spec.accepts(1) and not spec.accepts(4)
    with pytest.raises(DataError, match="3-channel"):
        spec.prepare(np.zeros((4, 8, 8), np.float32))


def test_volume_preparation_only_where_it_changes_something() -> None:
    images = [np.random.default_rng(i).random((3, 12, 12)).astype(np.float32) for i in range(4)]
    assert _spec().prepare_volume(images) is None  # plain 2D: prepared as separate images
    stacked = _spec(neighbours=1).prepare_volume(images)
    assert stacked is not None and len(stacked) == 4
    assert all(s.shape == (5, 16, 16) for s in stacked)  # 3 channels + 2 neighbour FLAIRs
    # Slice 1's neighbour channels are the FLAIR of slices 0 and 2, as prepared alone.
    flat = [_spec().prepare(im) for im in images]
    assert np.array_equal(stacked[1][3], flat[0][1]) and np.array_equal(stacked[1][4], flat[2][1])
