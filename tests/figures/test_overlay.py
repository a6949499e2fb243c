"""Overlays: regions drawn in their colours, the image size kept, the saved PNG's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from braintumor.figures.overlay import (
    _BAND,
    PALETTE,
    _outline,
    mask_rgba,
    overlay_rgb,
    save_overlay,
    save_rgb,
    to_gray,
)


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


def test_mask_rgba_is_opaque_only_on_regions() -> None:
    mask = np.zeros((2, 6, 5), np.uint8)
    mask[0, 1:4, 1:4] = 1  # WT
    mask[1, 2, 2] = 1  # TC, inside: drawn on top
    rgba = mask_rgba(mask, ["WT", "TC"])
    assert rgba.shape == (6, 5, 4) and rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba[..., 3] > 0, mask.any(axis=0))
    assert tuple(rgba[1, 1, :3]) == PALETTE["WT"] and tuple(rgba[2, 2, :3]) == PALETTE["TC"]


def _drawn_image(page: np.ndarray, size: tuple[int, int], title: bool) -> np.ndarray:
    """The scan's pixels inside a saved figure (``save_rgb``'s layout: a title band on
    top when there is a title, the image centred across the page)."""
    top, left = (_BAND if title else 0), (page.shape[1] - size[1]) // 2
    return page[top : top + size[0], left : left + size[1]]


def test_saved_overlay_shows_mask_colour_inside_and_gray_scan_outside(tmp_path: Path) -> None:
    # A 64 x 64 gradient, saved enlarged 4 x (256 px).
    img = np.linspace(0.0, 1.0, 64 * 64, dtype=np.float32).reshape(64, 64)
    mask = np.zeros((1, 64, 64), np.uint8)
    mask[0, 20:40, 10:30] = 1
    path = save_overlay(img, mask, tmp_path / "o.png", ["tumor"], title="slice 3: glioma")
    with Image.open(path) as im:
        assert im.mode == "RGB"
        page = np.asarray(im)
    drawn = _drawn_image(page, (256, 256), title=True)
    np.testing.assert_array_equal(drawn[::4, ::4], overlay_rgb(img, mask, ["tumor"]))
    gray = np.round(to_gray(img) * 255)
    red = np.asarray(PALETTE["tumor"], np.float32)
    # Inside: the translucent fill, the scan blended with the region's colour.
    inside = drawn[30 * 4, 20 * 4].astype(np.float32)
    expect = 0.65 * gray[30, 20] + 0.35 * red
    np.testing.assert_allclose(inside, expect, atol=1.0)
    assert inside[0] > inside[1] + 40  # reddish, not gray
    # On the border: the solid outline colour.
    assert tuple(drawn[20 * 4, 20 * 4]) == PALETTE["tumor"]
    assert tuple(drawn[30 * 4, 10 * 4 + 3]) == PALETTE["tumor"]
    # Outside: the gray scan, untouched.
    for y, x in [(5, 5), (50, 50), (30, 45), (10, 20)]:
        assert tuple(drawn[y * 4, x * 4]) == (int(gray[y, x]),) * 3
    # The title above the scan and the legend swatch below it.
    assert (page[: page.shape[0] // 8] < 128).any()  # title text
    legend = page[-30:]
    assert (legend == np.asarray(PALETTE["tumor"], np.uint8)).all(axis=-1).sum() > 50


def test_outline_is_the_scipy_border() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        h, w = rng.integers(1, 40, 2)
        region = rng.random((h, w)) > rng.random()
        for width in (1, 2, 3):
            inner = ndimage.binary_erosion(region, iterations=1, border_value=0)
            edge = region & ~inner
            if width > 1:
                edge = ndimage.binary_dilation(edge, iterations=width - 1) & region
            np.testing.assert_array_equal(_outline(region, width), edge)


def test_save_rgb_layout(tmp_path: Path) -> None:
    rgb = np.full((30, 50, 3), 90, np.uint8)
    with Image.open(save_rgb(rgb, tmp_path / "plain.png")) as im:
        assert im.size == (300, 180)  # enlarged 6 x (to >= 256 px), nothing around it
        np.testing.assert_array_equal(np.asarray(im)[::6, ::6], rgb)
    long_title = "BraTS2021_00006: tumor on slices " + ", ".join(map(str, range(60, 90)))
    legend = [("WT", PALETTE["WT"]), ("TC", PALETTE["TC"]), ("ET", PALETTE["ET"])]
    p = save_rgb(rgb, tmp_path / "framed.png", legend=legend, title=long_title)
    with Image.open(p) as im:
        page = np.asarray(im)
    assert page.shape[1] == 360 and page.shape[0] == 180 + 2 * 35
    np.testing.assert_array_equal(_drawn_image(page, (180, 300), True)[::6, ::6], rgb)
    for _, colour in legend:  # every swatch drawn
        assert (page[-35:] == np.asarray(colour, np.uint8)).all(axis=-1).any()
