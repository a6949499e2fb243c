"""A real BraTS case read as a pipeline input gives exactly what the brats format trains on."""

from __future__ import annotations

import numpy as np
import pytest

from braintumor.data import create_format
from braintumor.inference.scans import load_input
from tests.conftest import shared_subdir


@pytest.mark.slow
@pytest.mark.realdata
def test_brats_case_input_matches_the_training_format() -> None:
    case = shared_subdir("brats2021-sample") / "BraTS2021_00006"
    scan = load_input(case)
    assert scan.kind == "brats" and scan.data.shape == (4, 155, 240, 240)
    assert scan.spacing == pytest.approx((1.0, 1.0)) and scan.slice_thickness == pytest.approx(1)
    fmt = create_format(f"brats:{case}", skip_empty="tumor")
    rec = fmt.records()[len(fmt.records()) // 2]
    z = int(rec.extra["slice"])
    expected = fmt.load(rec)["image"]
    got = scan.slices("zscore")[z]
    # Same channels, orientation and intensity scale as the model saw in training.
    np.testing.assert_allclose(got, expected, atol=1e-4)
