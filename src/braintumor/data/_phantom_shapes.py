"""Building blocks of the phantom drawing: smooth random fields, outlines, distances, canvas.

Shapes are soft-edged (a one-pixel linear ramp) so that edges are anti-aliased
like a real acquisition; masks are the same shapes thresholded at one half.
Everything works on a pixel window of the image (the head's bounding box, or a
smaller one), in normalised head coordinates ``(u, v)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import numpy as np

GRID = 12  # side of the low-resolution random grids
F_TEX, F_WIGGLE, F_DEPTH, F_BIAS, F_TTEX, F_EDEMA = range(6)
N_FIELDS = 6
FIELD_GRID = (12, 6, 5, 4, 10, 8)  # grid actually used per field: lower = smoother

BRAIN, CSF_OUT, SKULL_IN, SKULL_OUT = 0.84, 0.86, 0.86, 0.94  # radii in head units


def _bspline(d: np.ndarray) -> np.ndarray:
    a = np.abs(d)
    return np.where(a < 1, 2 / 3 - a**2 + a**3 / 2, np.where(a < 2, (2 - a) ** 3 / 6, 0.0))


@lru_cache(maxsize=64)
def _upsampler(g: int, size: int) -> np.ndarray:
    """Cubic B-spline interpolation matrix (size x g), rows scaled to unit norm.

    Unit rows keep the upsampled field at unit variance everywhere.
    """
    t = (np.arange(size) + 0.5) / size * (g - 1)
    w = _bspline(t[:, None] - np.arange(g)[None, :]).astype(np.float32)
    return w / np.sqrt((w**2).sum(1, keepdims=True)).astype(np.float32)


Window = tuple[slice, slice]


@lru_cache(maxsize=16)
def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1] of a ``size`` px image."""
    c = ((np.arange(size) + 0.5) / size * 2 - 1).astype(np.float32)
    return np.meshgrid(c, c, indexing="xy")  # x (columns), y (rows, downwards)


def smooth_field(fields: np.ndarray, idx: int, z: float, size: int, win: Window) -> np.ndarray:
    """Unit-variance smooth random field at level ``z`` over the pixel window ``win``."""
    g, nz = FIELD_GRID[idx], fields.shape[1]
    t = min(max((z + 1) / 2 * (nz - 1), 0.0), nz - 1.0)
    i0 = min(int(t), nz - 2)
    w = t - i0
    low = (1 - w) * fields[idx, i0, :g, :g] + w * fields[idx, i0 + 1, :g, :g]
    up = _upsampler(g, size)
    rows, cols = win
    return _matmul(_matmul(up[rows], low), up[cols].T)


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in row blocks small enough for OpenBLAS to stay on the calling thread.

    OpenBLAS runs a gemm on one thread only while M*N*K <= 65536; above that it wakes
    its thread pool, which on a busy machine made 256 px fields 10x slower than a plain
    loop (einsum). Row blocks keep BLAS speed without the threads.
    """
    out = np.empty((a.shape[0], b.shape[1]), dtype=np.result_type(a, b))
    step = max(1, 65536 // max(1, b.shape[0] * b.shape[1]))
    for s in range(0, a.shape[0], step):
        np.matmul(a[s : s + step], b, out=out[s : s + step])
    return out


def hypot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sqrt(a**2 + b**2)``: 5x faster than ``np.hypot`` (no overflow guard, not needed here)."""
    out = a * a
    out += b * b
    return np.sqrt(out, out=out)


def outline(
    h: np.ndarray, dx: np.ndarray, dy: np.ndarray, r: np.ndarray, phase: float = 0.0
) -> np.ndarray:
    """1 + sum_k a_k cos(k theta + phi_k + k phase), theta the angle of (dx, dy), r = |(dx, dy)|.

    cos(k theta) and sin(k theta) come from powers of exp(i theta) = (dx + i dy) / r,
    which avoids arctan2 and cos on whole images (the slowest calls here).
    """
    inv = 1.0 / np.maximum(r, 1e-6)
    c1, s1 = dx * inv, dy * inv
    ck, sk, k = c1, s1, 1
    out = np.ones_like(r)
    for amp, ph, order in h.T.tolist():
        while k < order:
            ck, sk, k = ck * c1 - sk * s1, sk * c1 + ck * s1, k + 1
        shift = ph + phase * order
        out += (amp * math.cos(shift)) * ck - (amp * math.sin(shift)) * sk
    return out


def rho_of(shape: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Radius in units of the head outline (harmonics ``shape``): 1 on the outline."""
    r = hypot(u, v)
    return r / outline(shape, u, v, r)


def capsules(u: np.ndarray, v: np.ndarray, pts: np.ndarray, rad: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) to a chain of tapered capsules."""
    # All segments at once (segment axis first): one numpy call per step, not per segment.
    ax, ay = pts[:-1].T.astype(np.float32)[..., None, None]
    dx, dy = np.diff(pts, axis=0).T.astype(np.float32)[..., None, None]
    ra, dr = (x.astype(np.float32)[:, None, None] for x in (rad[:-1], np.diff(rad)))
    pu, pv = u - ax, v - ay
    h = (pu * dx + pv * dy) / (dx * dx + dy * dy + np.float32(1e-9))
    np.clip(h, 0, 1, out=h)
    d = hypot(pu - h * dx, pv - h * dy)
    d -= ra + h * dr
    return d.min(axis=0)


def near(u: np.ndarray, v: np.ndarray, pts: np.ndarray, reach: float) -> Window | None:
    """Smallest pixel window holding every pixel whose ``(u, v)`` lies within ``reach`` of
    the bounding box of ``pts`` (None if there is none)."""
    lo, hi = pts.min(0) - reach, pts.max(0) + reach
    inside = (u >= lo[0]) & (u <= hi[0]) & (v >= lo[1]) & (v <= hi[1])
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    if rows.size == 0:
        return None
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def bump(z: float, center: float, half: float) -> float:
    """Visibility of a structure spanning ``center +- half`` in z (1 at centre, 0 outside)."""
    return max(0.0, 1.0 - ((z - center) / half) ** 2)


class Fields(dict[int, np.ndarray]):
    """Smooth fields of one slice, computed on first use (tumor fields only when needed)."""

    def __init__(self, fields: np.ndarray, z: float, size: int, win: Window) -> None:
        super().__init__()
        self.args = (fields, z, size, win)

    def __missing__(self, idx: int) -> np.ndarray:
        fields, z, size, win = self.args
        self[idx] = out = smooth_field(fields, idx, z, size, win)
        return out


class Canvas:
    """Four modality images (of a pixel window) plus the patient's tissue values."""

    def __init__(
        self,
        img: np.ndarray,
        tissues: dict[str, np.ndarray],
        px: float,
        tmp: np.ndarray | None = None,
    ) -> None:
        self.img, self.tissues, self.px = img, tissues, px
        # Scratch for paint(): page faults on fresh memory cost as much as the arithmetic.
        self.tmp = np.empty_like(img) if tmp is None else tmp

    @contextmanager
    def region(self, win: Window) -> Iterator[Canvas]:
        """A canvas on a contiguous copy of the window ``win``, copied back on exit.

        For small structures: painting a window is cheaper than the whole image, and a
        contiguous copy paints twice as fast as a strided view.
        """
        img = self.img[:, win[0], win[1]].copy()
        tmp = self.tmp.reshape(-1)[: img.size].reshape(img.shape)  # shared: no fresh memory
        sub = Canvas(img, self.tissues, self.px, tmp)
        yield sub
        self.img[:, win[0], win[1]] = sub.img

    def soft(self, d: np.ndarray) -> np.ndarray:
        """Inside-ness of a signed distance ``d`` (positive inside), ramped over a pixel."""
        out = d * (1.0 / self.px)
        out += 0.5
        return np.clip(out, 0.0, 1.0, out=out)

    def paint(self, alpha: np.ndarray, tissue: str, mod: np.ndarray | None = None) -> None:
        """Blend towards the tissue's values (times ``mod``) with opacity ``alpha``."""
        val, delta = self.tissues[tissue][:, None, None], self.tmp
        if mod is None:
            np.subtract(val, self.img, out=delta)
        else:
            np.multiply(val, mod, out=delta)
            delta -= self.img
        delta *= alpha
        self.img += delta
