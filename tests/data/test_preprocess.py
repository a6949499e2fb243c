"""The geometry pipeline: channels, crop, pad, resize, prepare_sample."""

from __future__ import annotations

import time

import numpy as np
import pytest

from braintumor.data import preprocess as pp
from braintumor.errors import DataError


def _head(
    h: int = 120,
    w: int = 160,
    box: tuple[int, int, int, int] = (30, 90, 50, 130),
    background: float = 0.0,
    value: float = 0.8,
) -> np.ndarray:
    """1 x H x W image: a textured ellipse filling ``box`` on a flat background."""
    y0, y1, x0, x1 = box
    yy, xx = np.mgrid[:h, :w]
    cy, cx, ry, rx = (y0 + y1 - 1) / 2, (x0 + x1 - 1) / 2, (y1 - y0) / 2, (x1 - x0) / 2
    inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    rng = np.random.default_rng(0)
    img = np.full((h, w), background, np.float32) + rng.normal(0, 0.01, (h, w)).astype(np.float32)
    img[inside] = value + 0.1 * np.sin(xx[inside] / 3)
    return img[None]


def test_to_channels() -> None:
    g = np.random.default_rng(0).random((1, 4, 5), dtype=np.float32)
    rgb = pp.to_channels(g, 3)
    assert rgb.shape == (3, 4, 5) and np.array_equal(rgb[2], g[0])
    np.testing.assert_allclose(pp.to_channels(rgb, 1), g, atol=1e-6)
    assert pp.to_channels(g, None) is g
    four = np.zeros((4, 4, 5), np.float32)
    assert pp.to_channels(four, 4) is four
    with pytest.raises(DataError, match="4-channel image to 1"):
        pp.to_channels(four, 1)
    with pytest.raises(DataError, match="1-channel image to 4"):
        pp.to_channels(g, 4)


@pytest.mark.parametrize("background", [0.0, 1.0], ids=["dark", "white"])
def test_crop_finds_the_head_on_dark_or_white_margins(background: float) -> None:
    img = _head(background=background, value=0.45 if background else 0.8)
    mask = np.zeros((1, 120, 160), np.uint8)
    mask[0, 50:60, 80:90] = 1
    out, m = pp.crop_foreground(img, mask)
    h, w = out.shape[1:]
    assert 60 <= h <= 60 + 2 * 8 and 80 <= w <= 80 + 2 * 8  # the box plus a small margin
    assert m is not None and m.shape == (1, h, w) and m.sum() == 100  # mask cropped alike


def test_crop_ignores_text_and_white_frame() -> None:
    img = _head()
    img[0, 5:9, 5:30] = 1.0  # burnt-in text in a corner
    framed = np.ones((1, 140, 180), np.float32)  # white frame around a dark film
    framed[:, 10:130, 10:170] = img
    out, _ = pp.crop_foreground(framed)
    assert out.shape[1] <= 76 and out.shape[2] <= 96


@pytest.mark.parametrize("shift", [0.0, -0.6])
def test_crop_of_zscored_multichannel_volume_slice(shift: float) -> None:
    # BraTS-like: background exactly 0, brain values of both signs (mostly negative in
    # a slice darker than its volume's mean); no "white margin" logic may kick in
    rng = np.random.default_rng(1)
    img = np.zeros((4, 100, 100), np.float32)
    img[:, 20:80, 30:70] = rng.normal(shift, 1, (4, 60, 40))
    out, _ = pp.crop_foreground(img)
    assert out.shape[0] == 4 and 60 <= out.shape[1] <= 72 and 40 <= out.shape[2] <= 52


def test_crop_falls_back_when_foreground_is_tiny_or_absent() -> None:
    flat = np.full((1, 50, 60), 0.3, np.float32)
    assert pp.crop_foreground(flat)[0].shape == flat.shape
    dot = np.zeros((1, 100, 100), np.float32)
    dot[0, 40:44, 40:44] = 1.0  # 0.16% of the image: not a head
    assert pp.crop_foreground(dot)[0].shape == dot.shape


def test_pad_to_square_centres() -> None:
    img = np.ones((2, 4, 10), np.float32)
    mask = np.ones((1, 4, 10), np.uint8)
    out, m = pp.pad_to_square(img, mask)
    assert out.shape == (2, 10, 10) and m is not None and m.shape == (1, 10, 10)
    assert out[:, :3].sum() == 0 and out[:, 3:7].all() and out[:, 7:].sum() == 0


def test_resize_bilinear_image_nearest_mask() -> None:
    img = np.zeros((1, 64, 64), np.float32)
    img[:, :, 32:] = 1.0
    mask = np.zeros((2, 64, 64), np.uint8)
    mask[1, 16:48, 16:48] = 1
    out, m = pp.resize(img, 16, mask)
    assert out.shape == (1, 16, 16) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1 + 1e-6
    assert np.ptp(out[0], axis=0).max() < 1e-6  # each column constant, as in the input
    assert 0.05 < out[0, 0, 7] < 0.5 < out[0, 0, 8] < 0.95  # a smooth (bilinear) edge
    assert m is not None and m.dtype == np.uint8 and set(np.unique(m)) <= {0, 1}
    assert m[1].sum() == 64 and m[0].sum() == 0  # 32x32 square -> 8x8
    up, _ = pp.resize(img, (128, 96))
    assert up.shape == (1, 128, 96)


def test_prepare_sample_pipeline() -> None:
    img = _head()
    mask = np.zeros((1, 120, 160), np.uint8)
    mask[0, 55:65, 85:95] = 1
    sample = {"image": img, "mask": mask, "label": 2, "patient_id": "p", "path": "x"}
    out = pp.prepare_sample(sample, image_size=32, channels=3, crop=True)
    assert out is not sample and sample["image"] is img  # input untouched
    assert out["image"].shape == (3, 32, 32) and out["image"].dtype == np.float32
    assert out["mask"].shape == (1, 32, 32) and out["mask"].dtype == np.uint8
    assert out["label"] == 2 and out["patient_id"] == "p"
    # cropping enlarges the head: its mask occupies more of the output than without crop
    plain = pp.prepare_sample(sample, image_size=32, channels=None, crop=False)
    assert plain["image"].shape == (1, 32, 32)
    assert out["mask"].sum() > plain["mask"].sum()
    nomask = pp.prepare_sample({**sample, "mask": None}, 16, 1, True)
    assert nomask["mask"] is None and nomask["image"].shape == (1, 16, 16)


def test_prepare_sample_rejects_mismatch_and_bad_size() -> None:
    sample = {
        "image": np.zeros((1, 10, 10), np.float32),
        "mask": np.zeros((1, 9, 10), np.uint8),
        "path": "case.png",
    }
    with pytest.raises(DataError, match="case.png.*9x10.*10x10"):
        pp.prepare_sample(sample, 8, None, False)
    with pytest.raises(DataError, match="image_size"):
        pp.prepare_sample({**sample, "mask": None}, 0, None, False)


def test_prepare_sample_is_fast() -> None:
    img = np.repeat(_head(512, 512, (100, 400, 120, 380)), 3, axis=0)
    sample = {"image": img, "mask": np.zeros((1, 512, 512), np.uint8)}
    pp.prepare_sample(sample, 128, 1, True)  # warm-up
    t = time.perf_counter()
    for _ in range(10):
        pp.prepare_sample(sample, 128, 1, True)
    per_image = (time.perf_counter() - t) / 10
    # ~10 ms on one idle core; the bound is loose because the test machine is shared,
    # and catches only a pathological slowdown (e.g. a per-pixel Python loop).
    assert per_image < 0.25, f"{per_image * 1000:.1f} ms per 512x512 RGB image"
