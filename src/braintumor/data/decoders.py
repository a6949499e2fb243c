"""Decoders of 2D image files (PIL formats, TIFF): pixels exactly as stored, one
:class:`~braintumor.errors.DataError` per problem.

The header is checked (size, pixel type) before any pixel is decoded, so a
decompression bomb or a corrupt header is refused cheaply; :func:`_channels_first`
brings every layout to C x H x W with 1 or 3 channels. Scaling is
:mod:`braintumor.data.io`'s job (its :func:`~braintumor.data.io.read_image`).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from braintumor.data.limits import check_dtype, check_pixels
from braintumor.errors import DataError


def _channels_first(a: np.ndarray, path: Path) -> np.ndarray:
    """HxW / HxWxC / CxHxW -> CxHxW with 1 or 3 channels (alpha dropped)."""
    if 0 in a.shape:  # a header can declare zero samples per pixel, or zero rows
        raise DataError(f"{path}: the image is empty (shape {a.shape}); re-export it")
    if a.ndim == 2:
        return a[None]
    if a.ndim == 3:
        if a.shape[-1] <= 4:
            a = np.moveaxis(a, -1, 0)  # channels-last: what PIL and most TIFFs give
        elif a.shape[0] > 4:
            raise DataError(
                f"{path}: image has shape {a.shape}, not HxW or HxWxC with at most 4 "
                "channels (a multi-page stack?); save one 2D image per file"
            )
        c = a.shape[0]
        if c == 2:  # gray + alpha
            return a[:1]
        return a[:3] if c == 4 else a  # RGBA -> RGB
    raise DataError(f"{path}: image has {a.ndim} dimensions {a.shape}; expected a 2D image")


def _decode_pil(path: Path, limit: int | None) -> np.ndarray:
    from PIL import Image

    try:
        with warnings.catch_warnings():  # PIL's bomb warning: we check the size ourselves
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            check_pixels(path, (im.height, im.width), limit)  # before decoding: bombs
            im.load()  # decode fully now: a truncated file fails here, not later
            mode = im.mode
            if mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB")
            elif mode == "1":
                im = im.convert("L")
            elif mode == "LA":
                im = im.convert("L")
            return np.asarray(im).copy()
    except DataError:
        raise
    except Image.DecompressionBombError as exc:  # over PIL's own (higher) limit
        raise DataError(
            f"{path}: {exc}; a decompression bomb or a wrong file, downsample it"
        ) from None
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, ...
        raise DataError(
            f"{path}: cannot decode image ({type(exc).__name__}: {exc}); the file is "
            "corrupt or truncated, re-download or remove it"
        ) from None


@contextmanager
def _quiet_tifffile() -> Iterator[None]:
    # tifffile logs header inconsistencies at ERROR level; our DataError already says
    # what is wrong, and the CLI promises one line.
    log = logging.getLogger("tifffile")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _decode_tiff(path: Path, limit: int | None) -> np.ndarray:
    import tifffile

    try:
        with _quiet_tifffile(), tifffile.TiffFile(path) as tif:
            if not len(tif.pages):
                raise DataError(f"{path}: the TIFF holds no image; re-export it")
            # Declared shape and type first: a 0 x 0 or a 30000 x 30000 header is
            # refused here, before any strip is decompressed.
            page = tif.pages[0]
            check_pixels(path, page.shape, limit)
            if page.dtype is not None:
                check_dtype(path, page.dtype)
            series = tif.series[0]
            check_pixels(path, series.shape, limit)  # all pages of a stack together
            return np.asarray(series.asarray())
    except DataError:
        raise
    except Exception as exc:  # tifffile raises TiffFileError, ValueError, ...
        raise DataError(
            f"{path}: cannot decode TIFF ({type(exc).__name__}: {exc}); the file is "
            "corrupt or truncated, re-download or remove it"
        ) from None
