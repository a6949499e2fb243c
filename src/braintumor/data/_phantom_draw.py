"""Vectorised drawing of one phantom slice (private helper of :mod:`braintumor.data.phantom`).

Shapes are soft-edged (a one-pixel linear ramp) so that edges are anti-aliased
like a real acquisition; masks are the same shapes thresholded at one half.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from braintumor.data.phantom import Patient, PhantomConfig, Tumor

GRID = 12  # side of the low-resolution random grids
F_TEX, F_WIGGLE, F_DEPTH, F_BIAS, F_TTEX, F_EDEMA = range(6)
N_FIELDS = 6
FIELD_GRID = (12, 6, 5, 4, 10, 8)  # grid actually used per field: lower = smoother

BRAIN, CSF_OUT, SKULL_IN, SKULL_OUT = 0.84, 0.86, 0.86, 0.94  # radii in head units


def _bspline(d: np.ndarray) -> np.ndarray:
    a = np.abs(d)
    return np.where(a < 1, 2 / 3 - a**2 + a**3 / 2, np.where(a < 2, (2 - a) ** 3 / 6, 0.0))


@lru_cache(maxsize=64)
def _upsampler(g: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cubic B-spline interpolation matrix (size x g) and its row norms."""
    t = (np.arange(size) + 0.5) / size * (g - 1)
    w = _bspline(t[:, None] - np.arange(g)[None, :]).astype(np.float32)
    return w, np.sqrt((w**2).sum(1)).astype(np.float32)


Window = tuple[slice, slice]


@lru_cache(maxsize=16)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = ((np.arange(size) + 0.5) / size * 2 - 1).astype(np.float32)
    return np.meshgrid(c, c, indexing="xy")  # x (columns), y (rows, downwards)


def smooth_field(fields: np.ndarray, idx: int, z: float, size: int, win: Window) -> np.ndarray:
    """Unit-variance smooth random field at level ``z`` over the pixel window ``win``."""
    g, nz = FIELD_GRID[idx], fields.shape[1]
    t = float(np.clip((z + 1) / 2 * (nz - 1), 0, nz - 1))
    i0 = min(int(t), nz - 2)
    w = t - i0
    low = (1 - w) * fields[idx, i0, :g, :g] + w * fields[idx, i0 + 1, :g, :g]
    up, norm = _upsampler(g, size)
    rows, cols = win
    # einsum, not a BLAS matmul: OpenBLAS would spawn threads for 256 px outputs, which is
    # far slower on a busy machine than this small loop.
    smooth = np.einsum("yj,xj->yx", np.einsum("yi,ij->yj", up[rows], low), up[cols])
    return smooth / (norm[rows, None] * norm[None, cols])


def _outline(
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


def _capsules(u: np.ndarray, v: np.ndarray, pts: np.ndarray, rad: np.ndarray) -> np.ndarray:
    """Signed distance (negative inside) to a chain of tapered capsules."""
    best = np.full(u.shape, np.inf, dtype=np.float32)
    for (ax, ay), (bx, by), ra, rb in zip(
        pts[:-1].tolist(), pts[1:].tolist(), rad[:-1].tolist(), rad[1:].tolist(), strict=True
    ):
        dx, dy = bx - ax, by - ay
        h = np.clip(((u - ax) * dx + (v - ay) * dy) / (dx * dx + dy * dy + 1e-9), 0, 1)
        d = np.hypot(u - ax - h * dx, v - ay - h * dy) - (ra + h * (rb - ra))
        np.minimum(best, d, out=best)
    return best


def _bump(z: float, center: float, half: float) -> float:
    """Visibility of a structure spanning ``center +- half`` in z (1 at centre, 0 outside)."""
    return max(0.0, 1.0 - ((z - center) / half) ** 2)


class _Fields(dict[int, np.ndarray]):
    """Smooth fields of one slice, computed on first use (tumor fields only when needed)."""

    def __init__(self, fields: np.ndarray, z: float, size: int, win: Window) -> None:
        super().__init__()
        self.args = (fields, z, size, win)

    def __missing__(self, idx: int) -> np.ndarray:
        fields, z, size, win = self.args
        self[idx] = out = smooth_field(fields, idx, z, size, win)
        return out


class _Canvas:
    """Four modality images (or a view into them) plus the patient's tissue values."""

    def __init__(self, img: np.ndarray, tissues: dict[str, np.ndarray], px: float) -> None:
        self.img, self.tissues, self.px = img, tissues, px

    def sub(self, win: Window) -> _Canvas:
        return _Canvas(self.img[:, win[0], win[1]], self.tissues, self.px)

    def soft(self, d: np.ndarray) -> np.ndarray:
        """Inside-ness of a signed distance ``d`` (positive inside), ramped over a pixel."""
        out = d * (1.0 / self.px)
        out += 0.5
        return np.clip(out, 0.0, 1.0, out=out)

    def paint(self, alpha: np.ndarray, tissue: str, mod: np.ndarray | None = None) -> None:
        val = self.tissues[tissue][:, None, None]
        target = val if mod is None else val * mod[None]
        delta = target - self.img
        delta *= alpha[None]
        self.img += delta


def _cortex(
    c: _Canvas,
    p: Patient,
    z: float,
    uq: np.ndarray,
    vq: np.ndarray,
    brain: np.ndarray,
    fields: dict[int, np.ndarray],
) -> np.ndarray:
    """Grey matter ribbon, sulci, white matter, fissures (in mass-effect-deformed coords)."""
    px = c.px
    rq = np.hypot(uq, vq)
    thq = np.arctan2(vq, uq)
    rhoq = rq / _outline(p.shape, uq, vq, rq)
    # Sulci: clefts running inwards from the surface, bent by a smooth phase field, each
    # with its own depth; some gyri carry a shallow secondary sulcus. Grey matter is a
    # ribbon of fixed thickness along the surface and every cleft; inside it, white matter.
    phase = p.gyri * thq / (2 * np.pi) + 0.9 * fields[F_WIGGLE]
    idx = np.round(phase)
    frac = np.abs(phase - idx)
    k = idx.astype(np.int64) % p.sulci.shape[1]
    arc = rhoq * 2 * np.pi / p.gyri
    ribbon = BRAIN - rhoq
    clefts = np.zeros_like(rhoq)
    shallow = np.where(p.sulci[1][k] > 0.5, np.float32(0.75), np.float32(2))  # 2: none
    for off, deep in ((frac, p.sulci[0][k]), (0.5 - frac, shallow)):
        across = off * arc
        ribbon = np.minimum(ribbon, np.hypot(across, np.maximum(deep - rhoq, 0)))
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
    vis = _bump(z, -0.1, 0.35)  # Sylvian fissures at mid-low levels
    for s in (-1.0, 1.0) if vis > 0 else ():
        pts = np.array([[s * 0.92, -0.10], [s * (0.9 - 0.45 * vis), -0.04]])
        c.paint(c.soft(-_capsules(uq, vq, pts, np.array([0.02, 0.01]))) * brain, "csf")
    return wm


def _deep(
    c: _Canvas, p: Patient, z: float, uq: np.ndarray, vq: np.ndarray, brain: np.ndarray
) -> None:
    """Deep grey nuclei, ventricles, brainstem and cisterns (central window only)."""
    vent = p.ventricles
    # Deep grey nuclei, then ventricles over them.
    for cx, cy, ax, ay, zc, zh in (
        (0.085, 0.06, 0.07, 0.10, -0.07, 0.23),
        (0.21, -0.03, 0.05, 0.12, -0.03, 0.23),
        (0.11, -0.17, 0.045, 0.05, 0.07, 0.23),
    ):
        vis = _bump(z, zc, zh)
        if vis > 0:
            for s in (-1.0, 1.0):
                d = np.hypot((uq - s * cx) / ax, (vq - cy) / ay)
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
            sd = np.minimum(sd, _capsules(uq, vq, pts, rad))
        c.paint(c.soft(-sd) * c.soft(np.abs(uq) - 0.014), "csf")
    vis = _bump(z, -0.17, 0.18)  # third ventricle
    if vis > 0:
        sd = _capsules(uq, vq, np.array([[0.0, -0.06], [0.0, 0.12]]), np.full(2, 0.02 * vent))
        c.paint(c.soft(-sd) * math.sqrt(vis), "csf")
    if z < -0.2:  # brainstem in its cistern, suprasellar cistern, normal pituitary gland
        k = min(1.0, (-0.2 - z) / 0.25)
        cistern = np.hypot(uq / 0.15, (vq - 0.26) / 0.13)
        c.paint(c.soft((k - cistern) * 0.13), "csf")
        c.paint(c.soft((k - np.hypot(uq / 0.14, (vq - 0.31) / 0.12)) * 0.12), "stem")
        c.paint(c.soft(0.025 * k - np.hypot(uq, vq - 0.4)), "csf")  # fourth ventricle
        vis = _bump(z, -0.35, 0.17)
        if vis > 0:
            c.paint(c.soft(0.09 * math.sqrt(vis) - np.hypot(uq, vq - 0.07)), "csf")
        vis = _bump(z, -0.5, 0.1)
        if vis > 0:
            c.paint(c.soft(0.035 * math.sqrt(vis) - np.hypot(uq, vq - 0.08)), "gland")


def _tumor(
    c: _Canvas,
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
    radial = np.hypot(du, dv)
    tex = 1 + 0.08 * fields[F_TTEX]
    if tm.kind == "meningioma":  # flattened against the skull: wide along it, short across
        nu, nv = math.cos(tm.angle), math.sin(tm.angle)
        dist = np.hypot((du * nu + dv * nv) / 0.9, (-du * nv + dv * nu) / 1.25)
    else:
        dist = radial
    # Lobulated outline: a few low harmonics plus a smooth random field (no flower shapes).
    wob = (
        _outline(tm.harmonics, du, dv, radial)
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
        wob_n = _outline(tm.harmonics, du, dv, radial, 0.7) + 0.2 * fields[F_TTEX]
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


def _displace(
    u: np.ndarray, v: np.ndarray, center: tuple[float, float], r: float, amount: float
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates to sample so that structures near ``center`` appear pushed away."""
    du, dv = u - center[0], v - center[1]
    dist = np.hypot(du, dv) + 1e-6
    push = amount * r * np.exp(-((dist / (2.2 * r)) ** 2)) / dist
    return u - du * push, v - dv * push


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


def render(
    p: Patient, z: float, size: int, rng: np.random.Generator, cfg: PhantomConfig, show_tumor: bool
) -> dict[str, Any]:
    """Draw slice level ``z`` of patient ``p``; see :func:`phantom.render_slice`."""
    shrink = p.shrink(z)  # the head narrows towards vertex and base
    win, inner = _windows(p, z, size, shrink)
    x, y = (g[win] for g in _grid(size))
    ca, sa = math.cos(p.angle), math.sin(p.angle)
    dx, dy = x - p.center[0], y - p.center[1]
    u = (ca * dx + sa * dy) / (p.axes[0] * shrink)
    v = (-sa * dx + ca * dy) / (p.axes[1] * shrink)
    r = np.hypot(u, v)
    rho = r / _outline(p.shape, u, v, r)
    full = np.zeros((4, size, size), dtype=np.float32)
    c = _Canvas(full[:, win[0], win[1]], p.tissues, px=p.pixel(z, size))
    fields = _Fields(p.fields, z, size, win)

    c.paint(c.soft(1.0 - rho), "scalp")
    c.paint(c.soft(SKULL_OUT - rho), "bone")
    c.paint(c.soft(0.925 - rho) * c.soft(rho - 0.885), "marrow")
    c.paint(c.soft(SKULL_IN - rho), "csf")
    brain = c.soft(BRAIN - rho)
    c.paint(brain, "gm", 1 + cfg.texture * fields[F_TEX])
    tm = p.tumor if show_tumor else None
    uq, vq = u, v
    if tm is not None and tm.kind != "pituitary":
        uq, vq = _displace(u, v, tm.center, max(tm.radii(z)[0], 0.05), 0.5)
    wm = _cortex(c, p, z, uq, vq, brain, fields)
    _deep(c.sub(inner), p, z, uq[inner], vq[inner], brain[inner])
    seg = np.zeros((3, size, size), dtype=np.uint8)
    if tm is not None:
        seg[:, win[0], win[1]] = _tumor(c, tm, z, u, v, rho, brain, wm, fields)

    c.img *= np.exp(cfg.bias / 4 * fields[F_BIAS])[None]  # smooth coil sensitivity
    img = full
    img *= p.gain[:, None, None]
    # Rician noise: the magnitude |S + n| of the signal plus complex Gaussian noise n, with
    # n drawn in polar form (Box-Muller), which needs two uniforms instead of two normals.
    u1, u2 = rng.random((2, *img.shape), dtype=np.float32)
    np.subtract(1, u1, out=u1)  # 1 - U is in (0, 1], so its log is finite
    r = np.log(u1, out=u1)
    r *= np.float32(-2 * p.noise**2)  # r holds |n|^2
    cos = np.cos(np.float32(2 * np.pi) * u2, out=u2)
    cos *= np.sqrt(r)
    cos *= 2 * img  # 2 S |n| cos(phi)
    np.square(img, out=img)
    img += r
    img += cos
    np.sqrt(np.maximum(img, 0, out=img), out=img)
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
