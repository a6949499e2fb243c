"""Scan + mask (or heat map) overlays as RGB arrays and PNG files.

The scan is shown in gray (one channel, contrast-stretched), every mask channel as a
translucent fill plus a solid outline in a fixed colour per region name, so that the
same region always has the same colour in every figure of the project.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from braintumor.data.intensity import robust_scale

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


def _outline(region: np.ndarray, width: int) -> np.ndarray:
    inner = ndimage.binary_erosion(region, iterations=1, border_value=0)
    edge = region & ~inner
    if width > 1:
        edge = ndimage.binary_dilation(edge, iterations=width - 1) & region
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


def save_rgb(
    rgb: np.ndarray,
    path: str | Path,
    *,
    legend: Sequence[tuple[str, tuple[int, int, int]]] = (),
    title: str | None = None,
) -> Path:
    """Write an RGB array as a PNG with an optional title and legend.

    The image keeps its own pixels (nearest-neighbour, no resampling below 256 px:
    small images are enlarged by an integer factor so that outlines stay crisp).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = rgb.shape[:2]
    dpi = 100
    scale = max(1, int(np.ceil(256 / max(h, w))))
    img_w, img_h = w * scale / dpi, h * scale / dpi  # inches
    band = 0.35  # inches for the title and for the legend
    fig_w = max(img_w, 3.6 if title else 0.0)  # room for the title's text
    fig_h = img_h + band * (bool(title) + bool(legend))
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi)
    FigureCanvasAgg(fig)
    bottom = band / fig_h if legend else 0.0
    ax = fig.add_axes(((fig_w - img_w) / 2 / fig_w, bottom, img_w / fig_w, img_h / fig_h))
    ax.imshow(rgb, interpolation="nearest")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9, y=1 - 0.05 / fig_h, va="top")
    if legend:
        handles = [
            Patch(facecolor=(c[0] / 255, c[1] / 255, c[2] / 255), edgecolor="k", label=n)
            for n, c in legend
        ]
        fig.legend(
            handles=handles,
            loc="lower center",
            ncol=len(handles),
            fontsize=8,
            frameon=False,
            borderaxespad=0.1,
        )
    fig.savefig(path, dpi=dpi)
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
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (rgb.shape[1], 18), "white")
    draw = ImageDraw.Draw(strip)
    x = 4
    for k, name in enumerate(channel_names):
        draw.rectangle((x, 4, x + 10, 14), fill=region_color(name, k), outline="black")
        draw.text((x + 14, 3), name, fill="black")
        x += 24 + 7 * len(name)
    return np.concatenate([rgb, np.asarray(strip)], axis=0)
