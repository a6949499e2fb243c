"""The tumor of a phantom slice (glioma, meningioma, pituitary) and its mass effect."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from braintumor.data._phantom_shapes import (
    CSF_OUT,
    F_EDEMA,
    F_TTEX,
    F_WIGGLE,
    Canvas,
    hypot,
    outline,
)

if TYPE_CHECKING:
    from braintumor.data.phantom import Tumor


def draw_tumor(
    c: Canvas,
    tm: Tumor,
    z: float,
    u: np.ndarray,
    v: np.ndarray,
    rho: np.ndarray,
    brain: np.ndarray,
    wm: np.ndarray,
    fields: dict[int, np.ndarray],
) -> np.ndarray:
    """Paint the tumor; returns its NCR/ED/ET masks (3 x H x W uint8)."""
    rc, re = tm.radii(z)
    du, dv = u - tm.center[0], v - tm.center[1]
    radial = hypot(du, dv)
    tex = 1 + 0.08 * fields[F_TTEX]
    if tm.kind == "meningioma":  # flattened against the skull: wide along it, short across
        nu, nv = math.cos(tm.angle), math.sin(tm.angle)
        dist = hypot((du * nu + dv * nv) / 0.9, (-du * nv + dv * nu) / 1.25)
    else:
        dist = radial
    # Lobulated outline: a few low harmonics plus a smooth random field (no flower shapes).
    wob = (
        outline(tm.harmonics, du, dv, radial)
        + (0.15 if tm.kind == "glioma" else 0.06) * fields[F_EDEMA]
    )
    inside = brain if tm.kind == "glioma" else c.soft(CSF_OUT - rho)
    edema = np.zeros_like(u)
    if re > 0:
        # Edema tracks white matter, but always fills a blob around the tumor centre.
        spread = np.maximum(wm, c.soft(max(1.3 * rc, 0.5 * re) - dist))
        # A rim of irregular thickness around the core (never thinner than a quarter).
        r_e = rc * wob + (re - rc) * np.maximum(1 + 0.6 * fields[F_WIGGLE], 0.25)
        edema = c.soft(r_e - dist) * spread * brain
        c.paint(edema, "edema", tex)
    core = c.soft(rc * wob - dist) * inside if rc > 0 else np.zeros_like(u)
    necro = np.zeros_like(u)
    if tm.kind == "meningioma" and rc > 0:
        cleft = c.soft(rc * wob + 1.5 * c.px - dist) * brain
        c.paint(cleft * (1 - core), "csf")
        th = np.arctan2(v, u)
        off = np.abs((th - tm.angle + math.pi) % (2 * math.pi) - math.pi)
        tail = c.soft(1.9 * rc / 0.86 - off) * c.soft(c.px * 0.8 - np.abs(rho - 0.85))
        c.paint(tail * (1 - core), "dura")
        c.paint(core, "meningioma", tex)
    elif tm.kind == "pituitary":
        c.paint(core, "pituitary", tex)
    elif rc > 0:
        c.paint(core, "enhancing", 1 + 0.15 * fields[F_TTEX])
        wob_n = outline(tm.harmonics, du, dv, radial, 0.7) + 0.2 * fields[F_TTEX]
        necro = c.soft(rc * tm.necrosis * wob_n - dist) * core
        c.paint(necro, "necrosis", tex)
    ncr = necro > 0.5
    et = (core > 0.5) & ~ncr
    ed = (edema > 0.5) & ~et & ~ncr
    if not (et.any() or ed.any()):
        # A sliver thinner than half a pixel everywhere (rare, e.g. a meningioma cut near
        # its edge): keep its strongest pixel, so that label and mask always agree.
        alpha, keep = (core, et) if rc > 0 else (edema, ed)
        keep[np.unravel_index(int(np.argmax(alpha)), alpha.shape)] = True
    return np.stack([ncr, ed, et]).astype(np.uint8)


def displace(
    u: np.ndarray, v: np.ndarray, center: tuple[float, float], r: float, amount: float
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates to sample so that structures near ``center`` appear pushed away."""
    du, dv = u - center[0], v - center[1]
    dist = hypot(du, dv) + 1e-6
    push = amount * r * np.exp(-((dist / (2.2 * r)) ** 2)) / dist
    return u - du * push, v - dv * push
