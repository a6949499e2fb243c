"""3-D connected components: small ones dropped, larger ones kept whole."""

from __future__ import annotations

import numpy as np

from braintumor.inference.postprocess import drop_small_components, per_patient


def test_drops_components_below_the_size_and_keeps_the_rest() -> None:
    vol = np.zeros((3, 8, 8), bool)
    vol[0:3, 1:3, 1:3] = True  # 12 voxels across three slices: one 3-D component
    vol[1, 6, 6] = True  # a 1-voxel island
    vol[2, 5:7, 0:2] = True  # 4 voxels
    kept = drop_small_components(vol, min_voxels=5)
    assert kept[0:3, 1:3, 1:3].all()
    assert not kept[1, 6, 6] and not kept[2, 5:7, 0:2].any()
    assert drop_small_components(vol, min_voxels=4)[2, 5:7, 0:2].all()  # size 4 >= 4: kept
    assert np.array_equal(drop_small_components(vol, min_voxels=0), vol)
    # Diagonal neighbours in the next slice belong to the same component (26-connected).
    diag = np.zeros((2, 4, 4), bool)
    diag[0, 1, 1] = diag[1, 2, 2] = True
    assert drop_small_components(diag, min_voxels=2).sum() == 2


def test_per_patient_stacks_each_patients_slices_in_order() -> None:
    a0, a1, b0 = (np.zeros((1, 4, 4), np.uint8) for _ in range(3))
    a0[0, 1, 1] = a1[0, 1, 1] = 1  # 2 voxels through two slices of patient a
    b0[0, 1, 1] = 1  # the same pixel, but patient b has only this one voxel
    out = per_patient([a1, b0, a0], ["a", "b", "a"], order=[1, 0, 0], min_voxels=2)
    assert out[0].sum() == 1 and out[2].sum() == 1  # a's component spans its slices
    assert out[1].sum() == 0  # b's island is dropped: patients never join
    assert out[0].shape == (1, 4, 4) and out[0].dtype == np.uint8


def test_drop_small_probabilities_scales_the_size_to_the_output_grid() -> None:
    from braintumor.inference.postprocess import drop_small_probabilities

    p = np.zeros((2, 1, 16, 16), np.float32)  # 2 slices on a 16 px grid
    p[:, 0, 0:2, 0:2] = 0.9  # 8 voxels
    p[0, 0, 10:12, 10:13] = 0.8  # 6 voxels
    # 2 voxels at an 8 px network input = 8 voxels at 16 px: the 6-voxel blob goes.
    out = drop_small_probabilities(list(p), 0.5, 2, image_size=8)
    assert np.all(out[0][0, 10:12, 10:13] == 0) and np.all(out[0][0, 0:2, 0:2] == 0.9)
    assert np.array_equal(drop_small_probabilities(list(p), 0.5, 0, 8)[1], p[1])


def test_keep_largest_never_empties_a_volume_and_adds_nothing_otherwise() -> None:
    small = np.zeros((3, 8, 8), bool)
    small[1, 1:3, 1:3] = True  # 4 voxels: the volume's largest component
    small[2, 6, 6] = True  # 1 voxel
    assert not drop_small_components(small, min_voxels=10).any()  # plain: emptied
    kept = drop_small_components(small, min_voxels=10, keep_largest=True)
    assert kept[1, 1:3, 1:3].all() and kept.sum() == 4  # only the largest survives
    big = small.copy()
    big[0, 4:8, 4:8] = True  # 16 voxels pass the size: nothing else is kept back
    assert np.array_equal(
        drop_small_components(big, 10, keep_largest=True), drop_small_components(big, 10)
    )
    empty = np.zeros((2, 4, 4), bool)
    assert not drop_small_components(empty, 10, keep_largest=True).any()
    out = per_patient([small[1][None]], ["a"], order=[0], min_voxels=10, keep_largest=True)
    assert out[0].sum() == 4


def test_drop_small_probabilities_keep_largest_keeps_the_probabilities() -> None:
    from braintumor.inference.postprocess import drop_small_probabilities

    p = np.zeros((2, 1, 8, 8), np.float32)
    p[0, 0, 1:3, 1:3] = 0.7  # 4 voxels, the largest
    p[1, 0, 6, 6] = 0.9  # 1 voxel
    out = drop_small_probabilities(list(p), 0.5, 10, image_size=8, keep_largest=True)
    assert np.all(out[0][0, 1:3, 1:3] == 0.7) and out[1][0, 6, 6] == 0
    assert not any(o.any() for o in drop_small_probabilities(list(p), 0.5, 10, 8))
