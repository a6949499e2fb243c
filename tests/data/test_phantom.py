"""The phantom generator and the ``synthetic`` format built on it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from braintumor.data import create_format, list_formats
from braintumor.data.phantom import (
    CLASSES,
    TISSUES,
    generate_patient,
    generate_slice,
    sample_patient,
)
from braintumor.errors import ConfigError, DataError

NOTUMOR = CLASSES.index("notumor")
SIZE = 96


def _slice(kind: str, seed: int) -> dict:
    return generate_slice(np.random.default_rng(seed), kind, SIZE)


@pytest.mark.parametrize("kind", CLASSES)
def test_same_seed_same_slice_and_other_seed_differs(kind: str) -> None:
    a, b, c = _slice(kind, 3), _slice(kind, 3), _slice(kind, 4)
    for key in ("image", "seg", "mask", "head"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["image"], c["image"])


@pytest.mark.parametrize("kind", CLASSES)
def test_arrays_types_ranges_and_masks(kind: str) -> None:
    s = _slice(kind, 1)
    img, seg = s["image"], s["seg"]
    assert img.shape == (4, SIZE, SIZE) and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0 and img.std() > 0.05
    assert seg.shape == (3, SIZE, SIZE) and seg.dtype == np.uint8
    assert set(np.unique(seg)) <= {0, 1} and seg.sum(0).max() <= 1  # NCR/ED/ET exclusive
    np.testing.assert_array_equal(s["mask"], seg.any(0))
    assert not (s["mask"] & ~s["head"].astype(bool)).any()  # tumor inside the head
    assert (s["mask"].sum() == 0) == (kind == "notumor")
    assert s["label"] == CLASSES.index(kind)
    assert img[:, s["head"] == 0].mean() < 0.1  # dark background, only noise


def test_tissue_contrasts_follow_mri_physics() -> None:
    flair, t1, t1ce, t2 = range(4)
    t = TISSUES
    assert t["csf"][t2] > t["gm"][t2] > t["wm"][t2]  # T2: fluid bright
    assert t["csf"][t1] < t["gm"][t1] < t["wm"][t1]  # T1: white matter brightest
    assert t["csf"][flair] < t["wm"][flair] < t["edema"][flair]  # FLAIR: fluid suppressed
    assert t["scalp"][t1] > t["gm"][t1] and t["marrow"][t1] > t["gm"][t1]  # fat bright on T1
    assert t["enhancing"][t1ce] > t["enhancing"][t1] + 0.3  # contrast uptake


def test_glioma_has_necrotic_core_ring_enhancement_and_edema() -> None:
    for seed in range(3):
        s = _slice("glioma", seed)
        ncr, ed, et = s["seg"].astype(bool)
        assert ncr.sum() > 0 and ed.sum() > 0 and et.sum() > 0
        # Ring: the necrotic core is surrounded by enhancing tumor, not edema/brain.
        rim = ndimage.binary_dilation(ncr) & ~ncr
        assert (et[rim]).mean() > 0.8
        flair, t1, t1ce, _ = s["image"]
        brain = s["head"].astype(bool) & ~s["skull"].astype(bool) & ~s["mask"].astype(bool)
        assert flair[ed].mean() > flair[brain].mean() + 0.1  # edema bright on FLAIR
        assert t1[ncr].mean() < t1[et].mean()  # necrosis dark on T1
        assert t1ce[et].mean() > t1[et].mean() + 0.2  # enhancement
        assert not (s["mask"] & s["skull"]).any()  # intra-axial


def test_meningioma_is_extra_axial_enhancing_without_necrosis() -> None:
    for seed in range(3):
        s = _slice("meningioma", seed)
        ncr, _, et = s["seg"].astype(bool)
        assert ncr.sum() == 0 and et.sum() > 0
        near_skull = ndimage.binary_dilation(s["skull"].astype(bool), iterations=2)
        assert (et & near_skull).any()  # broad base on the skull
        assert s["image"][2][et].mean() > s["image"][1][et].mean() + 0.2


def test_pituitary_sits_at_the_midline_sella() -> None:
    for seed in range(3):
        s = _slice("pituitary", seed)
        ncr, _, et = s["seg"].astype(bool)
        assert ncr.sum() == 0 and et.sum() > 0
        ty, tx = ndimage.center_of_mass(s["mask"])
        hy, hx = ndimage.center_of_mass(s["head"])
        assert abs(tx - hx) < 0.08 * SIZE and abs(ty - hy) < 0.15 * SIZE


def test_patient_slices_change_smoothly_and_some_miss_the_tumor() -> None:
    slices = generate_patient(np.random.default_rng(5), "glioma", n_slices=8, size=64)
    areas = np.array([s["mask"].sum() for s in slices])
    assert (areas == 0).any() and (areas > 0).any() and len(set(areas[areas > 0])) > 1
    for s, area in zip(slices, areas, strict=True):
        assert (s["label"] == NOTUMOR) == (area == 0)
    levels = [s["level"] for s in slices]
    assert levels == sorted(levels)
    # Neighbouring slices are much more alike than slices of another patient.
    other = generate_patient(np.random.default_rng(6), "notumor", n_slices=8, size=64)
    near = np.abs(slices[0]["image"] - slices[1]["image"]).mean()
    far = np.abs(slices[0]["image"] - other[0]["image"]).mean()
    assert near < far


def test_sample_patient_rejects_unknown_kind() -> None:
    with pytest.raises(ValueError, match="valid"):
        sample_patient(np.random.default_rng(0), "astrocytoma", 3)


# --- the synthetic format ----------------------------------------------------------
def test_synthetic_format_records_and_loads_consistently() -> None:
    assert "synthetic" in list_formats()
    fmt = create_format("synthetic", n_patients=8, slices_per_patient=3, size=48)
    recs = fmt.records()
    assert len(recs) == 24 and len({r.patient_id for r in recs}) == 8
    assert recs[0].path == "synthetic://p000/s0" and all(r.split is None for r in recs)
    assert fmt.classes == list(CLASSES) and fmt.mask_channels == ["tumor"]
    assert {r.extra["kind"] for r in recs} == set(CLASSES)  # balanced kinds
    for rec in recs[:9]:
        s = fmt.load(rec)
        assert s["image"].shape == (4, 48, 48) and s["mask"].shape == (1, 48, 48)
        assert s["label"] == rec.label and s["path"] == rec.key
        assert (s["mask"].sum() == 0) == (rec.label == NOTUMOR)
    again = create_format("synthetic", n_patients=8, slices_per_patient=3, size=48)
    np.testing.assert_array_equal(again.load(recs[4])["image"], fmt.load(recs[4])["image"])


def test_synthetic_regions_nest_and_options() -> None:
    fmt = create_format(
        "synthetic",
        n_patients=4,
        slices_per_patient=2,
        size=48,
        target="regions",
        classes="binary",
        modalities=1,
        seed=2,
    )
    assert fmt.mask_channels == ["WT", "TC", "ET"] and fmt.classes == ["no_tumor", "tumor"]
    assert fmt.natural_channels == 1
    seen_tumor = False
    for rec in fmt.records():
        s = fmt.load(rec)
        wt, tc, et = s["mask"].astype(bool)
        assert s["image"].shape[0] == 1 and s["label"] in (0, 1)
        assert not (et & ~tc).any() and not (tc & ~wt).any()  # ET in TC in WT
        seen_tumor |= bool(wt.any())
    assert seen_tumor
    labels = create_format("synthetic", n_patients=4, target="labels")
    assert labels.mask_channels == ["NCR", "ED", "ET"]


def test_synthetic_format_errors() -> None:
    with pytest.raises(DataError, match="takes no path"):
        create_format("synthetic:/data/somewhere")
    with pytest.raises(ConfigError, match="target"):
        create_format("synthetic", target="everything")
    with pytest.raises(ConfigError, match="n_patients"):
        create_format("synthetic", n_patients="many")
    with pytest.raises(DataError, match="no option"):
        create_format("synthetic", colour=True)
    fmt = create_format("synthetic", n_patients=2)
    rec = fmt.records()[0]
    rec.path = "synthetic://p007/s0"
    with pytest.raises(DataError, match="outside"):
        fmt.load(rec)
