"""A PNG grid of random samples of a data set, masks overlaid in colour."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from braintumor.data.base import DatasetFormat, Record
from braintumor.errors import BrainTumorError

_MASK_COLOURS = ("red", "yellow", "lime", "cyan", "magenta")


def _pick(records: list[Record], n: int, seed: int) -> list[Record]:
    """``n`` random records, taken round-robin over labels so every class shows up."""
    rng = np.random.default_rng(seed)
    groups: dict[int, list[Record]] = defaultdict(list)
    for r in records:
        groups[r.label].append(r)
    queues = [list(rng.permutation(len(g))) for g in groups.values()]
    out: list[Record] = []
    while len(out) < min(n, len(records)):
        for g, q in zip(groups.values(), queues, strict=True):
            if q and len(out) < n:
                out.append(g[q.pop()])
    return out


def _display(image: np.ndarray) -> np.ndarray:
    """C x H x W float -> H x W (first channel) or H x W x 3, stretched to [0, 1].

    Percentiles of the nonzero pixels, zero kept black: BraTS slices are z-scored
    inside the brain with a 0 background, which a plain stretch would paint grey.
    """
    show = image[:3].transpose(1, 2, 0) if image.shape[0] == 3 else image[0]
    values = show[show != 0]
    if values.size == 0:
        return np.zeros_like(show)
    lo, hi = np.percentile(values, [0.5, 99.5])
    out = np.clip((show - lo) / (hi - lo), 0, 1) if hi > lo else np.ones_like(show)
    out[show == 0] = 0
    return out


def save_preview_grid(
    fmt: DatasetFormat, records: list[Record], path: str | Path, n: int = 16, seed: int = 0
) -> Path:
    """Write a PNG grid of ``n`` samples: class as title, masks filled and outlined in colour.

    Returns:
        The path written.
    """
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas

    chosen = _pick(records, n, seed)
    if not chosen:
        raise BrainTumorError(f"no samples to preview in {fmt.root}")
    cols = int(np.ceil(np.sqrt(len(chosen))))
    rows = int(np.ceil(len(chosen) / cols))
    fig = Figure(figsize=(2.4 * cols, 2.6 * rows), dpi=100)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes:
        ax.axis("off")
    names = fmt.classes
    for ax, rec in zip(axes, chosen, strict=False):
        sample = fmt.load(rec)
        shown = _display(sample["image"])
        ax.imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1)
        title = names[rec.label] if 0 <= rec.label < len(names) else ""
        mask = sample.get("mask")
        for k, channel in enumerate(mask if mask is not None else []):
            if channel.any():
                colour = _MASK_COLOURS[k % len(_MASK_COLOURS)]
                # An explicit RGBA layer: a masked array + colormap bleeds when resampled.
                overlay = np.zeros((*channel.shape, 4), np.float32)
                overlay[channel > 0] = to_rgba(colour, 0.3)
                ax.imshow(overlay, interpolation="nearest")
                ax.contour(channel, levels=[0.5], colors=[colour], linewidths=0.8)
        if mask is not None and not title:
            title = "tumor" if mask.any() else "no tumor"
        name = rec.key.split("://")[-1]  # synthetic://p000/s2 -> p000/s2
        if fmt.root is not None:
            name = name.removeprefix(f"{fmt.root}/")
        ax.set_title(f"{title}\n{name[-32:]}", fontsize=7)
    legend = ", ".join(
        f"{c} {_MASK_COLOURS[k % len(_MASK_COLOURS)]}" for k, c in enumerate(fmt.mask_channels)
    )
    fig.suptitle(f"{fmt.name}" + (f"  (masks: {legend})" if legend else ""), fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
