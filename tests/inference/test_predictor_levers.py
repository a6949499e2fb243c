"""The predictor applies a run's 2.5D input, per-volume scaling and flip TTA."""

from __future__ import annotations

import numpy as np
import torch

from braintumor.inference.predictor import Predictor
from tests.inference._cards import Recorder as _Recorder
from tests.inference._cards import card_for


def _card(neighbours: int, per_volume: bool) -> dict:
    card = card_for("segmentation", "x", 3 + 2 * neighbours, 1, 8)
    card["preprocessing"].update(channels=3, neighbours=neighbours)
    card["data"]["spec"] = "lgg:/data"  # FLAIR is channel 1
    card["normalisation"]["per_volume"] = per_volume
    return card


def test_volume_gets_real_neighbours_and_volume_scales() -> None:
    # 3 slices of 3 x 8 x 8; slice z has FLAIR value 0.1 * (z + 1), max FLAIR 0.3.
    vol = np.zeros((3, 8, 8, 3), np.float32)
    for z in range(3):
        vol[:, :, :, z] = 0.1 * (z + 1)
    rec = _Recorder()
    pred = Predictor(rec, _card(1, per_volume=True), device="cpu")
    pred.predict_volume(vol)
    x = torch.cat(rec.seen)
    assert x.shape[1] == 5
    flair = x[:, 1, 4, 4].numpy()
    assert np.allclose(flair, [1 / 3, 2 / 3, 1.0], atol=1e-2)  # scaled by the volume's max
    below, above = x[:, 3, 4, 4].numpy(), x[:, 4, 4, 4].numpy()
    assert np.allclose(below, flair[[0, 0, 1]], atol=1e-3)  # the edge repeats itself
    assert np.allclose(above, flair[[1, 2, 2]], atol=1e-3)


def test_single_slice_falls_back_to_its_own_scale_and_flair() -> None:
    rec = _Recorder()
    pred = Predictor(rec, _card(1, per_volume=True), device="cpu")
    image = np.full((3, 8, 8), 0.2, np.float32)
    pred.predict_images([image])
    x = rec.seen[0][0]
    assert torch.allclose(x[1], torch.ones(8, 8), atol=1e-2)  # its own 99th percentile
    assert torch.equal(x[3], x[1]) and torch.equal(x[4], x[1])


def test_tta_runs_the_flipped_image_too() -> None:
    rec = _Recorder()
    pred = Predictor(rec, _card(0, per_volume=False), device="cpu", tta=True)
    image = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    pred.predict_images([image])
    assert len(rec.seen) == 2
    assert torch.equal(rec.seen[1], torch.flip(rec.seen[0], (-1,)))


def _speck_volume() -> np.ndarray:
    """3 slices of 3 x 8 x 8: a 3x3 FLAIR blob in every slice, a 1-px speck in slice 0."""
    vol = np.zeros((3, 8, 8, 3), np.float32)  # C x X x Y x Z
    vol[:, 2:5, 2:5, :] = 1.0
    vol[:, 7, 7, 0] = 1.0
    return vol


def test_card_levers_drop_small_components_of_a_volume_only() -> None:
    card = _card(0, per_volume=False)
    card["inference"] = {"tta": False, "min_component_voxels": 5}
    pred = Predictor(_Recorder(), card, device="cpu")
    assert pred.min_component_voxels == 5 and not pred.tta
    masks = pred.masks(pred.predict_volume(_speck_volume()))  # K x X x Y x Z
    assert masks[0, 7, 7, 0] == 0  # the speck (1 voxel < 5) is gone
    assert masks[0, 2:5, 2:5, :].all()  # the blob (27 voxels) stays
    # Separate 2D images are not post-processed (a slice cannot see the volume).
    image = _speck_volume()[..., 0].transpose(0, 2, 1)
    assert pred.masks(pred.predict_images([image])[0])[0, 7, 7] == 1


def test_card_keep_largest_keeps_a_volumes_only_component() -> None:
    card = _card(0, per_volume=False)
    card["inference"] = {"tta": False, "min_component_voxels": 100}  # above the 27-voxel blob
    plain = Predictor(_Recorder(), card, device="cpu")
    assert not plain.masks(plain.predict_volume(_speck_volume())).any()  # emptied
    card["inference"]["keep_largest"] = True
    pred = Predictor(_Recorder(), card, device="cpu")
    masks = pred.masks(pred.predict_volume(_speck_volume()))
    assert pred.keep_largest and masks[0, 2:5, 2:5, :].all() and masks[0, 7, 7, 0] == 0


def test_card_tta_is_the_default_and_an_argument_overrides_it() -> None:
    card = _card(0, per_volume=False)
    card["inference"] = {"tta": True, "min_component_voxels": 0}
    assert Predictor(_Recorder(), card, device="cpu").tta
    assert not Predictor(_Recorder(), card, device="cpu", tta=False).tta
    assert not Predictor(_Recorder(), _card(0, per_volume=False), device="cpu").tta
