"""Normal anatomy of a phantom slice: cortex and sulci, fissures, deep nuclei, ventricles."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from braintumor.data._phantom_shapes import (
    BRAIN,
    F_DEPTH,
    F_TEX,
    F_WIGGLE,
    Canvas,
    bump,
    capsules,
    hypot,
    near,
)

if TYPE_CHECKING:
    from braintumor.data.phantom import Patient


def draw_cortex(
    c: Canvas,
    p: Patient,
    z: float,
    uq: np.ndarray,
    vq: np.ndarray,
    rhoq: np.ndarray,
    brain: np.ndarray,
    fields: dict[int, np.ndarray],
) -> np.ndarray:
    """Grey matter ribbon, sulci, white matter, fissures (in mass-effect-deformed coords)."""
    px = c.px
    thq = np.arctan2(vq, uq)
    # Sulci: clefts running inwards from the surface, bent by a smooth phase field, each
    # with its own depth; some gyri carry a shallow secondary sulcus. Grey matter is a
    # ribbon of fixed thickness along the surface and every cleft; inside it, white matter.
    phase = p.gyri * thq / (2 * np.pi) + 0.9 * fields[F_WIGGLE]
    idx = np.round(phase)
    frac = np.abs(phase - idx)
    k = idx.astype(np.intp)
    arc = rhoq * 2 * np.pi / p.gyri
    ribbon = BRAIN - rhoq
    clefts = np.zeros_like(rhoq)
    depth, second = (np.take(s, k, mode="wrap") for s in p.sulci)  # k modulo the count
    shallow = np.where(second > 0.5, np.float32(0.75), np.float32(2))  # 2: none
    for off, deep in ((frac, depth), (0.5 - frac, shallow)):
        across = off * arc
        ribbon = np.minimum(ribbon, hypot(across, np.maximum(deep - rhoq, 0)))
        open_ = np.clip((rhoq - deep) / (BRAIN - deep), 0, 1)
        clefts = np.maximum(clefts, c.soft(px * (0.3 + 0.8 * open_) - across) * c.soft(rhoq - deep))
    thick = 0.045 + 0.01 * fields[F_DEPTH] + 0.02 * min(1.0, max(0.0, (z - 0.4) / 0.4))
    wm = c.soft(ribbon - thick) * brain
    c.paint(wm, "wm", 1 + 0.035 * fields[F_TEX])
    c.paint(clefts * brain, "csf")
    # Interhemispheric fissure: front and back, the whole way above the corpus callosum.
    ant, post = (-0.28, 0.38) if z < 0.35 else (0.0, 0.0)
    along = np.maximum(c.soft(ant - vq), c.soft(vq - post))
    c.paint(c.soft(px * 0.7 - np.abs(uq)) * along * brain, "csf")
    vis = bump(z, -0.1, 0.35)  # Sylvian fissures at mid-low levels
    rad = np.array([0.02, 0.01])
    for s in (-1.0, 1.0) if vis > 0 else ():
        pts = np.array([[s * 0.92, -0.10], [s * (0.9 - 0.45 * vis), -0.04]])
        # Drawn in the small window around it: elsewhere its alpha is exactly 0.
        w = near(uq, vq, pts, rad.max() + px)
        if w is not None:
            with c.region(w) as sub:
                sub.paint(sub.soft(-capsules(uq[w], vq[w], pts, rad)) * brain[w], "csf")
    return wm


def draw_deep(
    c: Canvas, p: Patient, z: float, uq: np.ndarray, vq: np.ndarray, brain: np.ndarray
) -> None:
    """Deep grey nuclei, ventricles, brainstem and cisterns (central window only)."""
    vent = p.ventricles
    # Deep grey nuclei, then ventricles over them.
    for cx, cy, ax, ay, zc, zh in (
        (0.085, 0.06, 0.07, 0.10, -0.07, 0.23),
        (0.21, -0.03, 0.05, 0.12, -0.03, 0.23),
        (0.11, -0.17, 0.045, 0.05, 0.07, 0.23),
    ):
        vis = bump(z, zc, zh)
        if vis > 0:
            for s in (-1.0, 1.0):
                d = hypot((uq - s * cx) / ax, (vq - cy) / ay)
                c.paint(c.soft((math.sqrt(vis) - d) * min(ax, ay)), "deep")
    t = (z - 0.1) / 0.4
    if abs(t) < 1:
        k = vent * math.sqrt(1 - t * t)
        tip = 0.13 - 0.05 * max(t, 0.0)
        sd = np.full(uq.shape, np.inf, dtype=np.float32)
        for s in (-1.0, 1.0):
            pts = np.array(
                [
                    [s * tip, -0.30 + 0.04 * t],
                    [s * 0.045, -0.13],
                    [s * 0.08, 0.12],
                    [s * 0.16, 0.26],
                    [s * 0.13, 0.40 - 0.1 * max(t, 0.0)],
                ]
            )
            rad = np.array([0.03, 0.05, 0.035, 0.06 * (1 - 0.5 * max(t, 0.0)), 0.02]) * k
            # Near the top of the ventricles only the bodies remain: shorter and thinner.
            pts = (pts - [s * 0.07, 0.0]) * (0.4 + 0.6 * math.sqrt(1 - max(t, 0.0) ** 2))
            pts = (pts + [s * 0.07, 0.0]) * (0.85 + 0.15 * vent)
            sd = np.minimum(sd, capsules(uq, vq, pts, rad))
        c.paint(c.soft(-sd) * c.soft(np.abs(uq) - 0.014), "csf")
    vis = bump(z, -0.17, 0.18)  # third ventricle
    if vis > 0:
        sd = capsules(uq, vq, np.array([[0.0, -0.06], [0.0, 0.12]]), np.full(2, 0.02 * vent))
        c.paint(c.soft(-sd) * math.sqrt(vis), "csf")
    if z < -0.2:  # brainstem in its cistern, suprasellar cistern, normal pituitary gland
        k = min(1.0, (-0.2 - z) / 0.25)
        cistern = hypot(uq / 0.15, (vq - 0.26) / 0.13)
        c.paint(c.soft((k - cistern) * 0.13), "csf")
        c.paint(c.soft((k - hypot(uq / 0.14, (vq - 0.31) / 0.12)) * 0.12), "stem")
        c.paint(c.soft(0.025 * k - hypot(uq, vq - 0.4)), "csf")  # fourth ventricle
        vis = bump(z, -0.35, 0.17)
        if vis > 0:
            c.paint(c.soft(0.09 * math.sqrt(vis) - hypot(uq, vq - 0.07)), "csf")
        vis = bump(z, -0.5, 0.1)
        if vis > 0:
            c.paint(c.soft(0.035 * math.sqrt(vis) - hypot(uq, vq - 0.08)), "gland")
