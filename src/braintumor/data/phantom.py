"""Procedural brain-like MRI phantoms: the project's built-in data set.

A *patient* is a random head (size, shape, tilt, position, ventricle size, cortex
folding, tissue contrasts, noise) with at most one tumor; its slices are axial
cuts at increasing levels ``z`` in ``[-1, 1]`` (skull base to vertex), so anatomy
and tumor size change smoothly from slice to slice. Everything is drawn in
normalised head coordinates ``(u, v)`` (the inner edge of the scalp is ``rho = 1``)
by compositing soft-edged tissue layers on four co-registered modalities
(FLAIR, T1, T1ce, T2) with MRI-like contrasts, then applying a smooth bias field
and Rician noise. Tumors follow their textbook appearance:

- glioma: intra-axial, necrotic core (dark T1, bright T2), ring enhancement on
  T1ce, edema bright on FLAIR/T2 spreading along white matter, mass effect;
- meningioma: extra-axial, broad base on the skull, homogeneous enhancement, CSF
  cleft, dural tail, little or no edema;
- pituitary: at the sella (midline, just below the image centre), enhancing.

Rendering is vectorised numpy (a few ms per 128 px slice); everything is seeded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from braintumor.data import _phantom_draw as draw
from braintumor.data._phantom_shapes import GRID, N_FIELDS

CLASSES = ("glioma", "meningioma", "notumor", "pituitary")
MODALITIES = ("flair", "t1", "t1ce", "t2")
SEG_CHANNELS = ("NCR", "ED", "ET")

# Intensities (flair, t1, t1ce, t2) before bias field and noise. CSF is dark on
# FLAIR/T1 and bright on T2; white matter is brighter than grey matter on T1 and
# darker on T2/FLAIR; fat (scalp, diploe) is bright on T1.
TISSUES: dict[str, tuple[float, float, float, float]] = {
    "scalp": (0.50, 0.80, 0.82, 0.60),
    "bone": (0.04, 0.05, 0.05, 0.04),
    "marrow": (0.35, 0.72, 0.74, 0.45),
    "csf": (0.07, 0.12, 0.13, 0.95),
    "gm": (0.54, 0.44, 0.46, 0.58),
    "wm": (0.41, 0.64, 0.65, 0.40),
    "deep": (0.50, 0.50, 0.52, 0.50),
    "stem": (0.46, 0.56, 0.57, 0.46),
    "gland": (0.45, 0.48, 0.78, 0.48),
    "dura": (0.20, 0.22, 0.70, 0.25),
    "edema": (0.88, 0.36, 0.37, 0.84),
    "necrosis": (0.30, 0.15, 0.17, 0.92),
    "enhancing": (0.64, 0.42, 0.96, 0.62),
    "meningioma": (0.56, 0.44, 0.92, 0.58),
    "pituitary": (0.54, 0.45, 0.88, 0.56),
}
# A slice shows its tumor when the tumor's in-plane radius is at least this many head
# units and this many pixels, so that every tumor slice has a non-empty mask.
MIN_TUMOR_RADIUS = 0.035
MIN_TUMOR_PIXELS = 2.0


@dataclass(frozen=True)
class PhantomConfig:
    """Knobs of the generator (defaults give realistic-looking 128 px slices)."""

    noise: tuple[float, float] = (0.012, 0.035)  # Rician sigma range, drawn per patient
    bias: float = 0.30  # peak-to-peak amplitude of the multiplicative bias field
    texture: float = 0.05  # amplitude of the smooth grey/white matter texture
    contrast_jitter: float = 0.06  # per-patient relative jitter of tissue intensities
    level_range: tuple[float, float] = (-0.65, 0.75)  # slice levels drawn for patients


@dataclass
class Tumor:
    """A 3D tumor: in-plane outline at level z is ``radius * sqrt(1 - ((z-cz)/rz)^2)``."""

    kind: str
    center: tuple[float, float]  # (u, v) in head units
    cz: float
    rz: float
    radius: float
    harmonics: np.ndarray  # (3, K): amplitude, phase, order of outline perturbation
    edema: float = 0.0  # edema radius / core radius (0: none)
    necrosis: float = 0.0  # necrotic core radius / core radius (0: none)
    angle: float = 0.0  # meningioma: direction of its skull attachment

    def radii(self, z: float) -> tuple[float, float]:
        """In-plane (core, edema) radii at level ``z``; edema extends further in z."""
        core = self.radius * np.sqrt(max(0.0, 1.0 - ((z - self.cz) / self.rz) ** 2))
        ez = self.rz * (1.0 + 0.4 * (self.edema > 0))
        ed = self.edema * self.radius * np.sqrt(max(0.0, 1.0 - ((z - self.cz) / ez) ** 2))
        return float(core), float(ed)

    def present(self, z: float, pixel: float = 0.0) -> bool:
        """Whether level ``z`` shows the tumor, for pixels of ``pixel`` head units."""
        return max(self.radii(z)) >= max(MIN_TUMOR_RADIUS, MIN_TUMOR_PIXELS * pixel)


@dataclass
class Patient:
    """Everything random about one patient; slices are rendered from it."""

    kind: str
    levels: np.ndarray  # slice levels z, ascending
    center: tuple[float, float]
    angle: float
    axes: tuple[float, float]  # half width, half height of the head (image units)
    shape: np.ndarray  # (3, K) harmonics of the head outline
    ventricles: float  # ventricle size factor
    gyri: int  # number of sulci around the brain
    sulci: np.ndarray  # (2, 64): per-sulcus depth, chance of a secondary sulcus
    tissues: dict[str, np.ndarray]  # tissue -> (4,) jittered intensities
    gain: np.ndarray  # (4,) per-modality scanner gain
    noise: float
    fields: np.ndarray = field(repr=False)  # (n_fields, nz, g, g) low-res random fields
    tumor: Tumor | None = None

    @property
    def label(self) -> int:
        return CLASSES.index(self.kind)

    def shrink(self, z: float) -> float:
        """Head size at level ``z`` relative to its widest section."""
        return math.sqrt(max(0.05, 1 - (z / 1.3) ** 2))

    def pixel(self, z: float, size: int) -> float:
        """Size of one pixel in head units at level ``z`` in a ``size`` px image."""
        return 2.0 / size / (min(self.axes) * self.shrink(z))

    def shows_tumor(self, index: int, size: int) -> bool:
        z = float(self.levels[index])
        return self.tumor is not None and self.tumor.present(z, self.pixel(z, size))

    def slice_label(self, index: int, size: int) -> int:
        """Class of slice ``index`` at ``size`` px: the patient's kind if its tumor shows."""
        return self.label if self.shows_tumor(index, size) else CLASSES.index("notumor")


def _harmonics(rng: np.random.Generator, amp: float, orders: range) -> np.ndarray:
    k = np.array(list(orders), dtype=np.float32)
    h = np.stack([rng.normal(0, amp, k.size) / k, rng.uniform(0, 2 * np.pi, k.size), k])
    return h.astype(np.float32)


def _sample_tumor(rng: np.random.Generator, kind: str) -> Tumor:
    tumor = _draw_tumor(rng, kind)
    # Plain Python floats: numpy float64 scalars would promote the float32 images.
    for name in ("cz", "rz", "radius", "edema", "necrosis", "angle"):
        setattr(tumor, name, float(getattr(tumor, name)))
    tumor.center = (float(tumor.center[0]), float(tumor.center[1]))
    return tumor


def _draw_tumor(rng: np.random.Generator, kind: str) -> Tumor:
    if kind == "glioma":
        ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0.15, 0.5)
        radius = rng.uniform(0.12, 0.22)
        return Tumor(
            kind,
            (dist * np.cos(ang), dist * np.sin(ang)),
            rng.uniform(-0.2, 0.55),
            rng.uniform(0.18, 0.3),
            radius,
            _harmonics(rng, 0.3, range(2, 5)),
            edema=rng.uniform(1.35, 1.9),
            necrosis=rng.uniform(0.45, 0.68),
        )
    if kind == "meningioma":
        ang = rng.uniform(0, 2 * np.pi)
        return Tumor(
            kind,
            (0.0, 0.0),  # placed on the skull by sample_patient, which knows its outline
            rng.uniform(-0.15, 0.6),
            rng.uniform(0.14, 0.25),
            rng.uniform(0.14, 0.26),
            _harmonics(rng, 0.12, range(2, 5)),
            edema=rng.uniform(1.25, 1.45) if rng.random() < 0.4 else 0.0,
            angle=ang,
        )
    if kind == "pituitary":
        return Tumor(
            kind,
            (rng.normal(0, 0.01), rng.uniform(0.04, 0.12)),
            rng.uniform(-0.52, -0.42),
            rng.uniform(0.08, 0.13),
            rng.uniform(0.08, 0.15),
            _harmonics(rng, 0.08, range(2, 4)),
        )
    raise ValueError(f"unknown tumor kind {kind!r}; valid: {', '.join(CLASSES)}")


def _jitter_tissues(rng: np.random.Generator, jitter: float) -> np.ndarray:
    """:data:`TISSUES` (T x 4) times ``1 + N(0, jitter)`` per value, as float32."""
    # One draw of T x 4 gives the same numbers as T draws of 4 in a row, only faster.
    values = np.array(list(TISSUES.values()))
    return (values * (1 + rng.normal(0, jitter, values.shape))).astype(np.float32)


def sample_patient(
    rng: np.random.Generator, kind: str, n_slices: int, config: PhantomConfig | None = None
) -> Patient:
    """Draw one random patient of ``kind`` (one of :data:`CLASSES`) with ``n_slices`` levels.

    Tumor patients' levels are spread around the tumor so that it grows and shrinks
    across slices and the outermost slices usually miss it.
    """
    cfg = config or PhantomConfig()
    if kind not in CLASSES:
        raise ValueError(f"unknown phantom kind {kind!r}; valid: {', '.join(CLASSES)}")
    tumor = None if kind == "notumor" else _sample_tumor(rng, kind)
    lo, hi = cfg.level_range
    if tumor is None:
        span = rng.uniform(0.6, 1.0)
        start = rng.uniform(lo, max(lo, hi - span))
    else:
        span = 2.0 * tumor.rz * (1.0 + 0.4 * (tumor.edema > 0)) * rng.uniform(1.2, 1.5)
        start = tumor.cz - span / 2 + rng.uniform(-0.2, 0.2) * tumor.rz
    if n_slices == 1 and tumor is not None:  # a single slice cuts through the tumor
        levels = np.array([tumor.cz + rng.uniform(-0.3, 0.3) * tumor.rz])
    else:
        levels = start + (np.arange(n_slices) + 0.5) * span / n_slices
    shape = _harmonics(rng, 0.04, range(2, 6))
    if tumor is not None and tumor.kind == "meningioma":
        # Centre on the inner skull surface (which follows the head outline), so about
        # half the tumor is inside the skull and its base lies broadly against it.
        a = tumor.angle
        reach = 0.86 * (1 + float(sum(h * math.cos(k * a + ph) for h, ph, k in shape.T)))
        tumor.center = (reach * math.cos(a), reach * math.sin(a))
    return Patient(
        kind=kind,
        levels=np.clip(levels, -0.95, 0.95).astype(np.float32),
        center=(float(rng.normal(0, 0.03)), float(rng.normal(0, 0.03))),
        angle=float(rng.normal(0, 0.12)),
        axes=(float(rng.uniform(0.62, 0.74)), float(rng.uniform(0.78, 0.88))),
        shape=shape,
        ventricles=float(rng.uniform(0.75, 1.35)),
        gyri=int(rng.integers(18, 27)),
        sulci=np.stack([rng.uniform(0.6, 0.76, 64), rng.random(64)]).astype(np.float32),
        tissues=dict(zip(TISSUES, _jitter_tissues(rng, cfg.contrast_jitter), strict=True)),
        gain=rng.uniform(0.88, 1.02, 4).astype(np.float32),
        noise=float(rng.uniform(*cfg.noise)),
        fields=rng.standard_normal((N_FIELDS, 6, GRID, GRID)).astype(np.float32),
        tumor=tumor,
    )


def render_slice(
    patient: Patient,
    index: int,
    rng: np.random.Generator,
    size: int = 128,
    config: PhantomConfig | None = None,
) -> dict[str, np.ndarray | int | str | float]:
    """Render slice ``index`` of ``patient`` as a ``size`` x ``size`` image.

    Returns a dict: ``image`` float32 4 x H x W in [0, 1] (:data:`MODALITIES`),
    ``seg`` uint8 3 x H x W (:data:`SEG_CHANNELS`, mutually exclusive), ``mask``
    uint8 H x W (whole tumor), ``head`` and ``skull`` uint8 H x W, ``label`` int
    (index in :data:`CLASSES`), ``kind`` str and ``level`` float. ``rng`` only
    drives the acquisition noise; anatomy comes from ``patient``.
    """
    cfg = config or PhantomConfig()
    z = float(patient.levels[index])
    out = draw.render(patient, z, size, rng, cfg, patient.shows_tumor(index, size))
    out["label"] = patient.slice_label(index, size)
    out["kind"] = patient.kind
    out["level"] = z
    return out


def generate_patient(
    rng: np.random.Generator,
    kind: str,
    n_slices: int = 6,
    size: int = 128,
    config: PhantomConfig | None = None,
) -> list[dict[str, np.ndarray | int | str | float]]:
    """All ``n_slices`` slices of one new random patient."""
    patient = sample_patient(rng, kind, n_slices, config)
    return [render_slice(patient, i, rng, size, config) for i in range(n_slices)]


def generate_slice(
    rng: np.random.Generator,
    kind: str,
    size: int = 128,
    config: PhantomConfig | None = None,
) -> dict[str, np.ndarray | int | str | float]:
    """One slice of a new random patient; tumor kinds always show their tumor."""
    return render_slice(sample_patient(rng, kind, 1, config), 0, rng, size, config)
