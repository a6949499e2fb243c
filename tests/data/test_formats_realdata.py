"""Formats on the real data sets in ../shared/datasets (skipped when absent).

The expected counts are those of the copies described in that folder's README.md.
Only records() is run on whole sets; a few samples are loaded.
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest

from braintumor.data import create_format
from braintumor.data.preprocess import foreground_box, prepare_sample
from tests.conftest import shared_subdir

pytestmark = pytest.mark.realdata


def test_brain_tumor_mri_counts() -> None:
    fmt = create_format(f"brain-tumor-mri:{shared_subdir('brain-tumor-mri')}")
    recs = fmt.records()
    assert fmt.classes == ["glioma", "meningioma", "notumor", "pituitary"]
    assert len(recs) == 6348
    assert Counter(r.split for r in recs) == {"train": 5708, "test": 640}
    for rec in (recs[0], recs[-1]):  # RGB and grayscale JPEGs both come out gray
        s = fmt.load(rec)
        assert s["image"].shape == (1, 224, 224) and 0 <= s["image"].min() <= s["image"].max() <= 1
        out = prepare_sample(s, image_size=128, channels=1, crop=True)
        assert out["image"].shape == (1, 128, 128)


def test_lgg_counts_and_speed() -> None:
    root = shared_subdir("lgg-mri-segmentation")
    t = time.perf_counter()
    recs = create_format(f"lgg:{root}").records()  # reads all 1,716 masks
    elapsed = time.perf_counter() - t
    assert len(recs) == 1716
    assert len({r.patient_id for r in recs}) == 46
    assert sum(r.label for r in recs) == 582
    assert all(r.extra["clinical"].get("Patient") == r.patient_id for r in recs)
    assert elapsed < 15, f"records() took {elapsed:.1f} s"  # ~2 s on a busy 2-core box
    fmt = create_format(f"lgg:{root / 'kaggle_3m'}")
    s = fmt.load(next(r for r in recs if r.label == 1))
    assert s["image"].shape == (3, 256, 256) and s["mask"].shape == (1, 256, 256)
    assert s["mask"].sum() > 0


def test_brats_sample_counts() -> None:
    root = shared_subdir("brats2021-sample")
    fmt = create_format(f"brats:{root}", skip_empty="none")
    recs = fmt.records()
    assert len(recs) == 155 and sum(r.label for r in recs) == 68
    assert {r.patient_id for r in recs} == {"BraTS2021_00006"}
    assert len(create_format(f"brats:{root}", skip_empty="tumor").records()) == 68
    s = fmt.load(next(r for r in recs if r.label == 1))
    assert s["image"].shape == (4, 240, 240) and s["mask"].shape == (3, 240, 240)
    wt, tc, et = s["mask"].astype(bool)
    assert wt.any() and not (tc & ~wt).any() and not (et & ~tc).any()  # ET in TC in WT
    brain = s["image"][0] != 0
    assert abs(float(s["image"][0][brain].mean())) < 1.5  # z-scored, not raw scanner units


def test_image_folder_navoneel_counts_and_crop() -> None:
    fmt = create_format(f"image-folder:{shared_subdir('brain-mri-detection')}")
    recs = fmt.records()
    assert fmt.classes == ["no", "yes"] and len(recs) == 253
    assert Counter(r.label for r in recs) == {1: 155, 0: 98}
    kept = []
    for rec in recs[::5]:  # sizes and aspect ratios vary wildly in this set
        image = fmt.load(rec)["image"]
        y0, y1, x0, x1 = foreground_box(image)
        kept.append((y1 - y0) * (x1 - x0) / (image.shape[1] * image.shape[2]))
        out = prepare_sample({"image": image, "mask": None}, 128, 1, True)
        assert out["image"].shape == (1, 128, 128)
    # many images have wide margins (~40% lose a tenth or more of their area), but
    # the crop never removes most of the picture
    assert min(kept) > 0.3 and float(np.mean(np.array(kept) < 0.9)) > 0.25
