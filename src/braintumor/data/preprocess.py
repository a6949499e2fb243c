"""The single geometry pipeline: crop margins -> pad to square -> resize -> channels.

Training, evaluation and inference all call :func:`prepare_sample`, so a model always
sees images prepared exactly the same way. Only geometry and channel count change
here; intensities stay on the format's scale (bilinear resizing aside).

Arrays are numpy: images float32 C x H x W, masks uint8 K x H x W.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from braintumor.errors import DataError

# Foreground detection works on a copy at most this many pixels on a side: the head's
# bounding box does not need full resolution, and this keeps the crop under ~1 ms.
_DETECT_SIDE = 128

__all__ = [
    "crop_foreground",
    "foreground_box",
    "pad_to_square",
    "prepare_sample",
    "resize",
    "to_channels",
]


def _as_chw(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        return image[None]
    if image.ndim != 3:
        raise DataError(f"image has shape {image.shape}; expected C x H x W")
    return image


def to_channels(image: np.ndarray, channels: int | None) -> np.ndarray:
    """Convert C x H x W to ``channels`` channels: 1 -> 3 repeats, 3 -> 1 averages.

    ``None`` keeps the image as it is. Any other change (e.g. 4 MRI sequences to 1)
    has no meaningful default and raises :class:`DataError`.
    """
    image = _as_chw(image)
    c = image.shape[0]
    if channels is None or channels == c:
        return image
    if c == 1 and channels == 3:
        return np.repeat(image, 3, axis=0)
    if c == 3 and channels == 1:
        # The mean, not RGB luminance weights: MRI channels are sequences, not colours,
        # and for gray images saved as RGB both give the same result.
        return image.mean(axis=0, keepdims=True, dtype=np.float32)
    raise DataError(
        f"cannot convert a {c}-channel image to {channels} channels; set data.channels "
        f"to {c} (or leave it unset to use the data set's own channel count)"
    )


def _largest_blobs(fg: np.ndarray) -> np.ndarray | None:
    labels, n = ndimage.label(fg)
    if n == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    if sizes.max() < 0.01 * fg.size:  # tiny foreground: nothing worth cropping to
        return None
    # The largest component, plus any of comparable size: a low axial slice can show
    # the head as two blobs, while text and scanner labels are small.
    keep = np.flatnonzero(sizes >= 0.25 * sizes.max()) + 1
    return np.isin(labels, keep)


def _blobs_from(small: np.ndarray, sample: np.ndarray, within: np.ndarray | None) -> Any:
    """Largest foreground blobs of ``small`` (C x h x w) against the background level
    given by the median of the pixels in ``sample`` (a boolean h x w selection)."""
    background = np.median(small[:, sample], axis=1)[:, None, None]
    # Mean over channels of the distance to the background: for RGB-saved gray images
    # this is the gray difference, and JPEG colour noise in one channel averages out.
    diff = np.abs(small - background).mean(axis=0)
    region = diff if within is None else diff[within]
    # The maximum of the smoothed distance: a percentile would shrink towards the
    # noise when the foreground is tiny, and then call that noise foreground.
    scale = float(region.max()) if region.size else 0.0
    if scale <= 1e-6:
        return None, background
    fg = diff > 0.1 * scale
    if within is not None:
        fg &= within
    return _largest_blobs(fg), background


def _box(blobs: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(blobs.any(axis=1))
    cols = np.flatnonzero(blobs.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def foreground_box(image: np.ndarray, margin: float = 0.02) -> tuple[int, int, int, int]:
    """Bounding box ``(y0, y1, x0, x1)`` of the head in a C x H x W image.

    The background level is the median of a band along the image edge (dark for MRI,
    white for scanned films, 0 for z-scored volumes); foreground is whatever differs
    from it by more than 10% of the largest difference after smoothing. The box is that
    of the largest connected foreground component, grown by ``margin`` of the side.
    When the background is brighter than the foreground (a white frame around a dark
    film), a second pass finds the head inside the frame against the film's own dark
    background. Returns the whole image when the foreground is tiny or absent.
    """
    image = _as_chw(image)
    _, h, w = image.shape
    step = max(1, int(np.ceil(max(h, w) / _DETECT_SIDE)))
    small = ndimage.gaussian_filter(
        np.asarray(image[:, ::step, ::step], dtype=np.float32), sigma=(0, 1, 1)
    )
    # A band (not just the outermost row), so a thin frame line or a corner label
    # does not decide the background level.
    band = max(1, min(small.shape[1:]) // 20)
    edge = np.ones(small.shape[1:], dtype=bool)
    edge[band:-band, band:-band] = False
    blobs, background = _blobs_from(small, edge, None)
    if blobs is None:
        return 0, h, 0, w
    limit = (0, small.shape[1], 0, small.shape[2])
    inside = small[:, blobs].mean(axis=1)
    # White margins exist only in photographed or scanned pictures ([0, 1] scale); a
    # z-scored slice (values of both signs around a 0 background) never takes this path.
    if small.min() > -0.05 and float((background[:, 0, 0] - inside).mean()) > 0.1:
        # A ring one band inside the frame's inner edge (the smoothed frame bleeds
        # about a band inwards) samples the film's own background.
        core = ndimage.binary_erosion(blobs, iterations=band)
        ring = core & ~ndimage.binary_erosion(core, iterations=band)
        if ring.any():
            inner, _ = _blobs_from(small, ring, core)
            if inner is not None:
                limit, blobs = _box(blobs), inner  # never grow back into the frame
    y0, y1, x0, x1 = _box(blobs)
    pad = margin * max(h, w) / step + 1  # +1: the detection grid is ``step`` pixels
    y0, y1 = max(limit[0], y0 - pad), min(limit[1], y1 + pad)
    x0, x1 = max(limit[2], x0 - pad), min(limit[3], x1 + pad)
    return (
        int(y0 * step),
        min(h, int(np.ceil(y1 * step))),
        int(x0 * step),
        min(w, int(np.ceil(x1 * step))),
    )


def crop_foreground(
    image: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Crop dark or white margins around the head (see :func:`foreground_box`)."""
    image = _as_chw(image)
    y0, y1, x0, x1 = foreground_box(image)
    if mask is not None:
        mask = _as_chw(mask)[:, y0:y1, x0:x1]
    return image[:, y0:y1, x0:x1], mask


def pad_to_square(
    image: np.ndarray, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Pad the shorter side symmetrically with zeros (the background of MRI and of
    z-scored volumes) so that resizing never distorts the aspect ratio."""
    image = _as_chw(image)
    _, h, w = image.shape
    if h == w:
        return image, mask
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    spec = ((0, 0), (top, side - h - top), (left, side - w - left))
    image = np.pad(image, spec)
    if mask is not None:
        mask = np.pad(_as_chw(mask), spec)
    return image, mask


def resize(
    image: np.ndarray, size: int | tuple[int, int], mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize to ``size`` (side or (H, W)): bilinear with antialiasing for the image,
    nearest for the mask (labels must stay 0/1)."""
    image = _as_chw(image)
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if image.shape[-2:] == hw:
        return image, mask
    with torch.no_grad():
        t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
        # antialias only matters (and is only supported) when shrinking
        out = F.interpolate(t, size=hw, mode="bilinear", align_corners=False, antialias=True)
        image = out[0].numpy()
        if mask is not None:
            m = torch.from_numpy(np.ascontiguousarray(_as_chw(mask), dtype=np.uint8))[None]
            # "nearest-exact" samples pixel centres; plain "nearest" shifts by half a pixel
            mask = F.interpolate(m, size=hw, mode="nearest-exact")[0].numpy()
    return image, mask


def prepare_sample(
    sample: dict[str, Any], image_size: int, channels: int | None, crop: bool
) -> dict[str, Any]:
    """Apply the geometry pipeline to a loaded sample; returns a new dict.

    Steps: crop margins (if ``crop``) -> pad to square -> resize to ``image_size`` ->
    convert to ``channels``. Other keys are passed through unchanged.
    """
    if not isinstance(image_size, int) or image_size < 1:
        raise DataError(f"image_size must be a positive integer, got {image_size!r}")
    image = _as_chw(sample["image"]).astype(np.float32, copy=False)
    mask = sample.get("mask")
    if mask is not None:
        mask = _as_chw(mask)
        if mask.shape[-2:] != image.shape[-2:]:
            raise DataError(
                f"mask of {sample.get('path', 'sample')} is {mask.shape[-2]}x{mask.shape[-1]} "
                f"but its image is {image.shape[-2]}x{image.shape[-1]}; they must match"
            )
    if crop:
        image, mask = crop_foreground(image, mask)
    image, mask = pad_to_square(image, mask)
    image, mask = resize(image, image_size, mask)
    image = to_channels(image, channels)
    out = dict(sample)
    out["image"] = np.ascontiguousarray(image, dtype=np.float32)
    out["mask"] = None if mask is None else np.ascontiguousarray(mask, dtype=np.uint8)
    return out


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread while resizing images one by one (training's
    cache build, inference's per-slice path): a thread pool gains nothing on one small
    image, and on a busy machine its synchronisation made preparation ~6x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
