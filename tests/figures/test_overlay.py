"""Overlays: regions drawn in their colours, the image size kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from braintumor.figures.overlay import PALETTE, mask_rgba, overlay_rgb, save_overlay


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
