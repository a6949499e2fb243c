"""2.5D stacking: the right neighbours, also at the edges of a volume."""

from __future__ import annotations

import numpy as np

from braintumor.data.base import Record
from braintumor.data.stacking import neighbour_index, stack_neighbours


def _rec(pid: str, s: int | None, case: str = "c") -> Record:
    extra = {"case": case} if s is None else {"case": case, "slice_number": s}
    return Record(path=f"{pid}/{case}_{s}.tif", patient_id=pid, extra=extra)


def test_neighbours_within_a_volume_and_replicated_at_its_edges() -> None:
    # Two patients, shuffled; slice numbers 1..4 and 1..2.
    recs = [_rec("a", 3), _rec("b", 2), _rec("a", 1), _rec("a", 4), _rec("b", 1), _rec("a", 2)]
    idx = neighbour_index(recs, k=1)
    where = {(r.patient_id, r.extra["slice_number"]): i for i, r in enumerate(recs)}

    def names(i: int) -> list[tuple[str, int]]:
        return [(recs[j].patient_id, recs[j].extra["slice_number"]) for j in idx[i]]

    assert names(where["a", 2]) == [("a", 1), ("a", 3)]
    assert names(where["a", 1]) == [("a", 1), ("a", 2)]  # bottom edge: itself below
    assert names(where["a", 4]) == [("a", 3), ("a", 4)]  # top edge: itself above
    assert names(where["b", 1]) == [("b", 1), ("b", 2)]  # never another patient's slice
    two = neighbour_index(recs, k=2)
    assert [recs[j].extra["slice_number"] for j in two[where["a", 1]]] == [1, 1, 2, 3]


def test_samples_without_a_slice_position_are_their_own_neighbours() -> None:
    recs = [_rec("a", None), _rec("b", None)]
    assert neighbour_index(recs, k=1).tolist() == [[0, 0], [1, 1]]
    assert neighbour_index(recs, k=0).shape == (2, 0)


def test_stack_appends_the_neighbours_flair() -> None:
    image = np.stack([np.full((2, 2), v, np.float32) for v in (1, 2, 3)])
    below, above = image * 10, image * 100
    out = stack_neighbours(image, [below, above], flair_channel=1)
    assert out.shape == (5, 2, 2)
    assert [float(c[0, 0]) for c in out] == [1, 2, 3, 20, 200]


def test_volume_neighbours_for_ordered_slices() -> None:
    from braintumor.data.stacking import volume_neighbours

    assert volume_neighbours(3, 1).tolist() == [[0, 1], [0, 2], [1, 2]]
    assert volume_neighbours(1, 2).tolist() == [[0, 0, 0, 0]]
