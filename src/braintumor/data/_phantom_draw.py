"""Draw one phantom slice (private helper of :mod:`braintumor.data.phantom`).

:func:`render` composes the layers (scalp, skull, brain from :mod:`._phantom_anatomy`,
tumor from :mod:`._phantom_tumor`) on four modalities, then applies the bias field
and Rician noise.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from braintumor.data._phantom_anatomy import draw_cortex, draw_deep
from braintumor.data._phantom_shapes import (
    BRAIN,
    F_BIAS,
    F_TEX,
    SKULL_IN,
    SKULL_OUT,
    Canvas,
    Fields,
    Window,
    grid,
    rho_of,
)
from braintumor.data._phantom_tumor import displace, draw_tumor

if TYPE_CHECKING:
    from braintumor.data.phantom import Patient, PhantomConfig


def _windows(p: Patient, z: float, size: int, shrink: float) -> tuple[Window, Window]:
    """Pixel windows holding the head and the central structures (skip the background)."""
    ca, sa = math.cos(p.angle), math.sin(p.angle)
    a, b = p.axes[0] * shrink, p.axes[1] * shrink

    def box(us: tuple[float, float], vs: tuple[float, float], margin: int) -> Window:
        xs = [p.center[0] + ca * u * a - sa * v * b for u in us for v in vs]
        ys = [p.center[1] + sa * u * a + ca * v * b for u in us for v in vs]

        def span(t: list[float]) -> slice:
            lo, hi = (min(t) + 1) / 2 * size, (max(t) + 1) / 2 * size
            return slice(max(0, int(lo) - margin), min(size, int(hi) + margin + 1))

        return span(ys), span(xs)

    reach = 1.0 + float(np.abs(p.shape[0]).sum())  # the head outline's largest bulge
    head = box((-reach, reach), (-reach, reach), 2)
    inner = box((-0.5, 0.5), (-0.5, 0.6), 2)
    rel = (
        slice(
            max(inner[0].start, head[0].start) - head[0].start,
            min(inner[0].stop, head[0].stop) - head[0].start,
        ),
        slice(
            max(inner[1].start, head[1].start) - head[1].start,
            min(inner[1].stop, head[1].stop) - head[1].start,
        ),
    )
    return head, rel


def _rician(
    signal: np.ndarray, win: Window, size: int, rng: np.random.Generator, sigma: float
) -> np.ndarray:
    """Noisy magnitude images ``|S + n|``, ``n`` complex Gaussian noise of std ``sigma``.

    ``S`` is ``signal`` inside the pixel window ``win`` of the ``size`` px images and 0
    outside it, where ``|S + n| = |n|`` needs no angle. ``n`` is drawn in polar form
    (Box-Muller), which needs two uniforms instead of two normals. ``signal`` is
    overwritten: everything is computed in place, as page faults on fresh memory cost
    about as much as the arithmetic here.
    """
    shape = (signal.shape[0], size, size)
    u1, u2 = rng.random(shape, dtype=np.float32), rng.random(shape, dtype=np.float32)
    np.subtract(1, u1, out=u1)  # 1 - U is in (0, 1], so its log is finite
    r = np.log(u1, out=u1)
    r *= np.float32(-2 * sigma**2)  # r holds |n|^2
    s, rw, cos = signal, r[:, win[0], win[1]], u2[:, win[0], win[1]]
    cos *= np.float32(2 * np.pi)
    np.cos(cos, out=cos)
    cos *= s
    cos *= 2  # 2 S cos(phi)
    np.square(s, out=s)
    s += rw
    img = np.sqrt(r, out=r)  # |n|: the whole image outside the window
    cos *= rw  # rw is a view of img: 2 S |n| cos(phi)
    s += cos
    rw[...] = np.sqrt(np.maximum(s, 0, out=s), out=s)
    return img


def render(
    p: Patient, z: float, size: int, rng: np.random.Generator, cfg: PhantomConfig, show_tumor: bool
) -> dict[str, Any]:
    """Draw slice level ``z`` of patient ``p``; see :func:`phantom.render_slice`."""
    shrink = p.shrink(z)  # the head narrows towards vertex and base
    win, inner = _windows(p, z, size, shrink)
    x, y = (g[win] for g in grid(size))
    ca, sa = math.cos(p.angle), math.sin(p.angle)
    dx, dy = x - p.center[0], y - p.center[1]
    u = (ca * dx + sa * dy) / (p.axes[0] * shrink)
    v = (-sa * dx + ca * dy) / (p.axes[1] * shrink)
    rho = rho_of(p.shape, u, v)
    # Paint on a contiguous array of the head window: twice as fast as on a strided view.
    c = Canvas(np.zeros((4, *u.shape), np.float32), p.tissues, px=p.pixel(z, size))
    fields = Fields(p.fields, z, size, win)

    c.paint(c.soft(1.0 - rho), "scalp")
    c.paint(c.soft(SKULL_OUT - rho), "bone")
    c.paint(c.soft(0.925 - rho) * c.soft(rho - 0.885), "marrow")
    c.paint(c.soft(SKULL_IN - rho), "csf")
    brain = c.soft(BRAIN - rho)
    c.paint(brain, "gm", 1 + cfg.texture * fields[F_TEX])
    tm = p.tumor if show_tumor else None
    uq, vq, rhoq = u, v, rho
    if tm is not None and tm.kind != "pituitary":
        uq, vq = displace(u, v, tm.center, max(tm.radii(z)[0], 0.05), 0.5)
        rhoq = rho_of(p.shape, uq, vq)
    wm = draw_cortex(c, p, z, uq, vq, rhoq, brain, fields)
    with c.region(inner) as centre:
        draw_deep(centre, p, z, uq[inner], vq[inner], brain[inner])
    seg = np.zeros((3, size, size), dtype=np.uint8)
    if tm is not None:
        seg[:, win[0], win[1]] = draw_tumor(c, tm, z, u, v, rho, brain, wm, fields)

    c.img *= np.exp(cfg.bias / 4 * fields[F_BIAS])[None]  # smooth coil sensitivity
    c.img *= p.gain[:, None, None]
    img = _rician(c.img, win, size, rng, p.noise)
    head = np.zeros((size, size), dtype=np.uint8)
    skull = np.zeros((size, size), dtype=np.uint8)
    head[win] = rho < 1.0
    skull[win] = (rho >= SKULL_IN) & (rho < SKULL_OUT)
    return {
        "image": np.clip(img, 0.0, 1.0, out=img),
        "seg": seg,
        "mask": seg.any(0).astype(np.uint8),
        "head": head,
        "skull": skull,
    }
