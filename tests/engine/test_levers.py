"""Inference levers chosen on validation: per-volume post-processing and flip TTA."""

from __future__ import annotations

import torch

from braintumor.data.base import Record
from braintumor.engine.levers import (
    GATE_AREAS,
    Levers,
    choose_gate,
    choose_levers,
    postprocessed,
    with_tta,
)
from braintumor.engine.tasks import create_task

S = 16


class _Loader(list):
    """A list of batches with the ``dataset.records`` the levers read."""

    def __init__(self, batches: list[dict], records: list[Record]) -> None:
        super().__init__(batches)
        self.dataset = type("D", (), {"records": records})()


def _data(n_patients: int = 3, slices: int = 4, batch: int = 3) -> tuple[_Loader, torch.Tensor]:
    """Each slice: a 6x6 tumour (truth) at the centre; the 'network' adds a 1-px speck."""
    records, images, masks = [], [], []
    for p in range(n_patients):
        for s in range(slices):
            records.append(
                Record(
                    path=f"p{p}/s{s}.tif",
                    patient_id=f"p{p}",
                    extra={"case": f"c{p}", "slice_number": s},
                )
            )
            m = torch.zeros(1, S, S)
            m[0, 5:11, 5:11] = 1
            img = m.clone()
            img[0, 1, 14] = 1  # false positive: one pixel, not continued in other slices
            images.append(img if s % 2 == 0 else m.clone())
            masks.append(m)
    order = list(range(len(records)))[::-1]  # volumes arrive out of order, interleaved
    batches = []
    for i in range(0, len(order), batch):
        idx = order[i : i + batch]
        batches.append(
            {
                "image": torch.stack([images[j] for j in idx]),
                "mask": torch.stack([masks[j] for j in idx]),
                "patient_id": [records[j].patient_id for j in idx],
                "path": [records[j].key for j in idx],
            }
        )
    return _Loader(batches, records), torch.stack(masks)


def _forward(x: torch.Tensor) -> torch.Tensor:
    return x * 40 - 20


def test_postprocessed_drops_small_components_and_keeps_every_sample() -> None:
    loader, _ = _data()
    pairs = [(_forward(b["image"]), b) for b in loader]
    out = list(postprocessed(pairs, loader.dataset.records, 0.5, min_voxels=10))
    keys = [k for _, b in out for k in b["path"]]
    assert sorted(keys) == sorted(r.key for r in loader.dataset.records)
    for logits, batch in out:
        fg = torch.sigmoid(logits) > 0.5
        assert torch.equal(fg, batch["mask"] > 0.5)  # the speck is gone, the tumour kept
    kept = list(postprocessed(pairs, loader.dataset.records, 0.5, min_voxels=1000))
    assert all(not (torch.sigmoid(lg) > 0.5).any() for lg, _ in kept)  # tumour too small: dropped
    assert list(postprocessed(pairs, loader.dataset.records, 0.5, 0)) == pairs


def test_choose_levers_takes_postprocessing_only_when_val_gains() -> None:
    loader, _ = _data()
    task = create_task("segmentation", ["tumor"], 0.5)
    levers, table, gates = choose_levers(_forward, task, loader, "dice_per_patient_mean")
    assert levers.min_component_voxels in {10, 40, 160} and not levers.tta
    # Sizes > 1 are tried with and without keep_largest: 2 x (1 + 5 x 2) rows. Every val
    # volume has a tumour and none is emptied (a tie), so keeping the largest is taken.
    assert len(table) == 22 and levers.keep_largest
    # Every slice holds tumour: detection is undefined on val, so no gate is chosen.
    assert levers.gate_area is None and len(gates) == 1 + len(GATE_AREAS)
    # A network without false positives gains nothing: no lever switched on.
    clean = _Loader([{**b, "image": b["mask"].clone()} for b in loader], loader.dataset.records)
    assert choose_levers(_forward, task, clean, "dice_per_patient_mean")[0] == Levers()


def _tiny_tumour_data() -> tuple[_Loader, torch.Tensor]:
    """:func:`_data`, but patient p2's tumour is one 2x2 patch on one slice (4 voxels)."""
    loader, masks = _data()
    for b in loader:
        for j, pid in enumerate(b["patient_id"]):
            if pid == "p2":
                b["mask"][j] = 0
                b["image"][j] = 0
                if b["path"][j].endswith("s1.tif"):
                    b["mask"][j, 0, 7:9, 7:9] = b["image"][j, 0, 7:9, 7:9] = 1
    return loader, masks


def test_choose_levers_keeps_a_volumes_largest_component_when_that_wins_on_val() -> None:
    loader, _ = _tiny_tumour_data()
    task = create_task("segmentation", ["tumor"], 0.5)
    levers, table, _ = choose_levers(_forward, task, loader, "dice_per_patient_mean")
    # Dropping the specks (size 10) would empty p2, whose only tumour is 4 voxels.
    row = {(r["min_component_voxels"], r["keep_largest"]): r for r in table if not r["tta"]}
    assert row[(10, True)]["dice_per_patient_mean"] > row[(10, False)]["dice_per_patient_mean"]
    assert levers.keep_largest and levers.min_component_voxels >= 10
    # The same patient healthy (no tumour in truth, one 4-voxel false alarm): emptying wins.
    for b in loader:
        b["mask"][[j for j, p in enumerate(b["patient_id"]) if p == "p2"]] = 0
    levers, _, _ = choose_levers(_forward, task, loader, "dice_per_patient_mean")
    assert not levers.keep_largest and levers.min_component_voxels >= 10


def test_postprocessed_keep_largest_scores_the_emptied_volume() -> None:
    loader, _ = _tiny_tumour_data()
    pairs = [(_forward(b["image"]), b) for b in loader]
    recs = loader.dataset.records
    for keep, expect in ((False, 0), (True, 4)):
        out = list(postprocessed(pairs, recs, 0.5, 10, keep_largest=keep))
        p2 = [lg for lg, b in out if b["patient_id"][0] == "p2"][0]
        assert int((torch.sigmoid(p2) > 0.5).sum()) == expect


def _volume(tumour: list[int], speck: list[int], size: int = 16) -> tuple:
    """One patient's (logits, batch): slices with a 6x6 tumour (truth and prediction) or
    a healthy slice where the network marks ``speck`` pixels (a false alarm)."""
    n = len(tumour)
    masks, logits = torch.zeros(n, 1, size, size), torch.full((n, 1, size, size), -20.0)
    for i, (t, s) in enumerate(zip(tumour, speck, strict=True)):
        if t:
            masks[i, 0, 5:11, 5:11] = 1
            logits[i, 0, 5:11, 5:11] = 20
        logits[i, 0, 0, :s] = 20
    batch = {"mask": masks, "patient_id": ["p"] * n, "path": [f"s{i}" for i in range(n)]}
    return logits, batch


def test_choose_gate_takes_the_threshold_that_drops_false_alarms_only() -> None:
    task = create_task("segmentation", ["tumor"], 0.5)
    # 36-px tumours (area 0.14), 4-px false alarms on healthy slices (0.016).
    vols = [_volume([1, 1, 0, 0], [0, 0, 4, 0]), _volume([0, 1, 1, 0], [4, 0, 0, 0])]
    gate, rows = choose_gate(vols, task, "dice_per_patient_mean", grid=(0.01, 0.05, 0.5))
    assert gate == 0.05  # 0.01 keeps the alarms; 0.5 empties the tumours
    by = {r["gate_area"]: r for r in rows}
    assert by[0.0]["detection"] == 0.75 and by[0.05]["detection"] == 1.0
    assert by[0.5]["dice_per_patient_mean"] < by[0.0]["dice_per_patient_mean"]
    # Where the tumours are the small ones, every threshold costs Dice: no gate.
    small = [(lg.clone(), {**b, "mask": b["mask"].clone()}) for lg, b in vols]
    for lg, b in small:
        b["mask"][:] = 0
        lg[:] = -20
        lg[0, 0, 0, :4] = 20  # a 4-px true tumour on slice 0 ...
        b["mask"][0, 0, 0, :4] = 1
        lg[1, 0, 5:11, 5:11] = 20  # ... and a 36-px false alarm on slice 1
    gate, _ = choose_gate(small, task, "dice_per_patient_mean", grid=(0.01, 0.05))
    assert gate is None


def test_with_tta_averages_the_flip_and_returns_logits() -> None:
    x = torch.zeros(1, 1, 4, 4)
    x[..., 0] = 1.0  # left column only

    def net(t: torch.Tensor) -> torch.Tensor:
        return t * 8 - 4

    out = torch.sigmoid(with_tta(net, True)(x))
    ref = (torch.sigmoid(net(x)) + torch.sigmoid(net(torch.flip(x, (-1,)))).flip(-1)) / 2
    assert torch.allclose(out, ref, atol=1e-5)
    assert with_tta(net, False) is net


def test_levers_from_card_defaults_to_off() -> None:
    assert Levers.from_card({}) == Levers()
    lv = Levers.from_card({"inference": {"tta": True, "min_component_voxels": 40}})
    assert lv == Levers(True, 40) and lv.any and lv.as_dict()["min_component_voxels"] == 40
    kept = Levers.from_card({"inference": {"min_component_voxels": 40, "keep_largest": True}})
    assert kept.keep_largest and kept.as_dict()["keep_largest"] and not Levers().keep_largest
    gate = Levers.from_card({"inference": {"gate_area": 0.002}})
    assert gate.gate_area == 0.002 and gate.any and gate.as_dict()["gate_area"] == 0.002
