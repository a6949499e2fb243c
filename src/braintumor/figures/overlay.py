"""Scan + mask (or heat map) overlays as RGB arrays and PNG files.

The scan is shown in gray (one channel, contrast-stretched), every mask channel as a
translucent fill plus a solid outline in a fixed colour per region name, so that the
same region always has the same colour in every figure of the project.

Everything is drawn with numpy and PIL (no matplotlib figure per image: ``predict``
writes one overlay per input slice, so drawing has to cost about as little as the
network's forward pass), and PNGs are written with a fast zlib level.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from braintumor.data.intensity import robust_scale

# zlib level of overlay / figure PNGs: level 1 writes an overlay several times faster
# than PIL's default (6) for files about 1.5x larger.
PNG_COMPRESS_LEVEL = 1

# Fixed colours per region name (RGB 0-255). Nested BraTS regions (WT > TC > ET) are
# drawn outer first, so inner regions stay visible on top.
PALETTE: dict[str, tuple[int, int, int]] = {
    "tumor": (230, 40, 40),
    "NCR": (230, 40, 40),
    "ED": (40, 200, 80),
    "ET": (255, 215, 0),
    "WT": (40, 200, 80),
    "TC": (40, 120, 255),
}
_EXTRA = [(255, 120, 0), (200, 60, 255), (0, 220, 220), (255, 90, 180)]


def region_color(name: str, index: int = 0) -> tuple[int, int, int]:
    """Colour of a mask channel; unknown names get a distinct fallback colour."""
    for key, rgb in PALETTE.items():
        if key.lower() == name.lower():
            return rgb
    return _EXTRA[index % len(_EXTRA)]


def to_gray(image: np.ndarray, channel: int = 0) -> np.ndarray:
    """One channel of a C x H x W (or H x W) scan, stretched to [0, 1] (1st-99th percentile).

    Percentiles rather than min/max so that z-scored volumes and scans with a few hot
    pixels still show their anatomy.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:
        img = img[min(channel, img.shape[0] - 1)]
    if img.ndim != 2:
        raise ValueError(f"expected an image C x H x W or H x W, got shape {image.shape}")
    return robust_scale(img, 1, 99)


def _as_masks(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or m.shape[-2:] != shape:
        raise ValueError(f"mask of shape {mask.shape} does not match image size {shape}")
    return m > 0.5


def _neighbours(a: np.ndarray) -> tuple[np.ndarray, ...]:
    """The 4-connected neighbours of every pixel of a 2D bool array (outside = False)."""
    p = np.pad(a, 1)
    return p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]


def _outline(region: np.ndarray, width: int) -> np.ndarray:
    """Pixels of ``region`` within ``width`` (4-connected steps) of its border.

    The same pixels as scipy's ``binary_erosion`` / ``binary_dilation`` with their
    default cross structure and a False border, in a few numpy operations.
    """
    up, down, left, right = _neighbours(region)
    edge = region & ~(up & down & left & right)
    for _ in range(width - 1):
        up, down, left, right = _neighbours(edge)
        edge = (edge | up | down | left | right) & region
    return edge


def overlay_rgb(
    image: np.ndarray,
    mask: np.ndarray | None,
    channel_names: Sequence[str] | None = None,
    *,
    image_channel: int = 0,
    alpha: float = 0.35,
) -> np.ndarray:
    """The overlay as an H x W x 3 uint8 array.

    Args:
        image: scan, C x H x W or H x W, any intensity scale.
        mask: K x H x W (or H x W) of 0/1 (values > 0.5 count), or None for the scan alone.
        channel_names: names of the K mask channels (pick the colours); default ``tumor``.
        image_channel: which image channel to show in gray (e.g. FLAIR for BraTS).
        alpha: opacity of the fill; the outline is always opaque.
    """
    gray = to_gray(image, image_channel)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    if mask is not None:
        masks = _as_masks(mask, gray.shape)
        names = list(channel_names or [])
        width = max(1, round(min(gray.shape) / 200))
        for k, region in enumerate(masks):
            if not region.any():
                continue
            name = names[k] if k < len(names) else f"class {k}"
            color = np.asarray(region_color(name, k), dtype=np.float32) / 255.0
            rgb[region] = (1 - alpha) * rgb[region] + alpha * color
            rgb[_outline(region, width)] = color
    return (rgb * 255).round().astype(np.uint8)


def mask_rgba(mask: np.ndarray, channel_names: Sequence[str] | None = None) -> np.ndarray:
    """The mask alone as an H x W x 4 uint8 image: each region in its colour, opaque;
    transparent elsewhere (a viewer lays it over the scan at the opacity it likes)."""
    masks = _as_masks(mask, np.asarray(mask).shape[-2:])
    names = list(channel_names or [])
    rgba = np.zeros((*masks.shape[-2:], 4), dtype=np.uint8)
    for k, region in enumerate(masks):  # later (inner) regions are drawn on top
        name = names[k] if k < len(names) else f"class {k}"
        rgba[region] = (*region_color(name, k), 255)
    return rgba


def heatmap_rgb(
    image: np.ndarray,
    heat: np.ndarray,
    *,
    image_channel: int = 0,
    alpha: float = 0.45,
    cmap: str = "jet",
) -> np.ndarray:
    """A [0, 1] heat map (H x W, same size as the scan) blended over the gray scan."""
    from matplotlib import colormaps

    gray = to_gray(image, image_channel)
    h = np.asarray(heat, dtype=np.float32)
    if h.shape != gray.shape:
        raise ValueError(f"heat map {h.shape} does not match image size {gray.shape}")
    colored = colormaps[cmap](np.clip(h, 0.0, 1.0))[..., :3]
    # Weight the blend by the heat itself so that cold areas keep the anatomy visible.
    w = alpha * np.clip(h, 0.0, 1.0)[..., None]
    rgb = (1 - w) * gray[..., None] + w * colored
    return (rgb * 255).round().astype(np.uint8)


@lru_cache(maxsize=8)
def _font(size: int) -> Any:
    """PIL's default font at ``size`` px (its bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # old Pillow or no FreeType
        return ImageFont.load_default()


def _fitted_font(draw: ImageDraw.ImageDraw, text: str, width: int, size: int) -> Any:
    """The largest font from ``size`` down to 8 px in which ``text`` fits ``width``."""
    for s in range(size, 7, -1):
        font = _font(s)
        if draw.textlength(text, font=font) <= width:
            return font
    return _font(8)


_BAND = 35  # px above the image for the title, and below it for the legend
_TITLE_PX, _LEGEND_PX = 13, 11  # font sizes (9 pt and 8 pt at 100 dpi)


def save_rgb(
    rgb: np.ndarray,
    path: str | Path,
    *,
    legend: Sequence[tuple[str, tuple[int, int, int]]] = (),
    title: str | None = None,
) -> Path:
    """Write an RGB array as a PNG with an optional title and legend.

    The image keeps its own pixels (nearest-neighbour, no resampling below 256 px:
    small images are enlarged by an integer factor so that outlines stay crisp), on a
    white page with the title above it and the legend (colour swatch + name per
    region) below it.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=-1)
    rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    h, w = rgb.shape[:2]
    scale = max(1, int(np.ceil(256 / max(h, w))))
    img = Image.fromarray(rgb)
    if scale > 1:
        img = img.resize((w * scale, h * scale), Image.Resampling.NEAREST)
    img_w, img_h = img.size
    page_w = max(img_w, 360 if title else 0)  # room for the title's text
    top = _BAND if title else 0
    page = Image.new("RGB", (page_w, img_h + top + (_BAND if legend else 0)), "white")
    page.paste(img, ((page_w - img_w) // 2, top))
    draw = ImageDraw.Draw(page)
    if title:
        font = _fitted_font(draw, title, page_w - 8, _TITLE_PX)
        draw.text((page_w / 2, 5), title, fill="black", font=font, anchor="mt")
    if legend:
        font = _font(_LEGEND_PX)
        sw, gap, pad = 22, 6, 16  # swatch width, swatch-to-text, between entries
        widths = [sw + gap + draw.textlength(n, font=font) for n, _ in legend]
        x = max(2.0, (page_w - sum(widths) - pad * (len(widths) - 1)) / 2)
        y = img_h + top + _BAND / 2
        for (name, color), wd in zip(legend, widths, strict=True):
            draw.rectangle((x, y - 5, x + sw, y + 5), fill=tuple(color), outline="black")
            draw.text((x + sw + gap, y), name, fill="black", font=font, anchor="lm")
            x += wd + pad
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return path


def save_overlay(
    image: np.ndarray,
    mask: np.ndarray | None,
    path: str | Path,
    channel_names: Sequence[str] | None = None,
    title: str | None = None,
    *,
    image_channel: int = 0,
) -> Path:
    """Write the scan with every mask channel drawn in its own colour, plus a legend.

    Args:
        image: scan, C x H x W or H x W.
        mask: K x H x W of 0/1 (or None: the scan alone).
        path: PNG file to write (folders are created).
        channel_names: names of the mask channels, e.g. ``["tumor"]`` or ``["NCR","ED","ET"]``.
        title: optional title above the image.
        image_channel: image channel shown in gray.

    Returns:
        The path written.
    """
    rgb = overlay_rgb(image, mask, channel_names, image_channel=image_channel)
    names = list(channel_names or (["tumor"] if mask is not None else []))
    legend = [(n, region_color(n, k)) for k, n in enumerate(names)]
    return save_rgb(rgb, path, legend=legend, title=title)


def enlarge(rgb: np.ndarray, min_side: int = 192) -> np.ndarray:
    """Integer nearest-neighbour enlargement so that small images stay readable."""
    k = max(1, int(np.ceil(min_side / max(rgb.shape[:2]))))
    return np.repeat(np.repeat(rgb, k, axis=0), k, axis=1) if k > 1 else rgb


def montage(tiles: Sequence[np.ndarray], ncols: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile equally sized H x W x 3 arrays into one grid image (black padding)."""
    if not tiles:
        raise ValueError("montage needs at least one tile")
    h, w = tiles[0].shape[:2]
    n = len(tiles)
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    out = np.zeros((nrows * (h + pad) - pad, ncols * (w + pad) - pad, 3), dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, ncols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = tile
    return out


def with_legend(rgb: np.ndarray, channel_names: Sequence[str]) -> np.ndarray:
    """``rgb`` with a strip below it naming each region next to its colour swatch."""
    strip = Image.new("RGB", (rgb.shape[1], 18), "white")
    draw = ImageDraw.Draw(strip)
    x = 4
    for k, name in enumerate(channel_names):
        draw.rectangle((x, 4, x + 10, 14), fill=region_color(name, k), outline="black")
        draw.text((x + 14, 3), name, fill="black")
        x += 24 + 7 * len(name)
    return np.concatenate([rgb, np.asarray(strip)], axis=0)
