"""Per-patient Dice of a trained LGG segmenter at the data's own resolution.

The engine scores masks at the network's input size (``data.image_size``), so runs
trained at 128 and 192 px are scored against differently resized ground truth. Here
every patient of one split goes through :class:`~braintumor.inference.predictor.Predictor`
as a volume (what ``predict`` / ``pipeline`` / ``serve`` do: per-volume scaling, 2.5D
neighbours, the card's TTA and 3-D component removal), the probabilities come back on
the original 256 x 256 grid and are compared with the original masks: the resolution
Buda et al. report. Runs at different sizes are compared on equal terms.

Val by default (for choosing between runs); ``--split test`` reads the test patients,
which is for a recipe's final figure only.

Example::

    python benchmarks/native_dice.py runs/lgg_seg runs/lgg_seg_192 --split val
    python benchmarks/native_dice.py runs/lgg_seg --inference keep_largest=false
    # out-of-fold over a cross-validation's folds (each fold's test patients once):
    python benchmarks/native_dice.py runs/lgg_cv/fold_* --split test --pool
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from _common import append_markdown, fmt, markdown_table, write_result


def split_volumes(
    run_dir: Path, card: dict[str, Any], split: str
) -> tuple[Any, dict[str, list[Any]]]:
    """The run's data format and its ``split``'s records, per patient in slice order."""
    from braintumor.data import create_format
    from braintumor.data.stacking import slice_position
    from braintumor.engine.evaluate import saved_split

    fmt_ = create_format(card["data"]["spec"], **card["data"]["options"])
    volumes: dict[str, list[Any]] = {}
    for rec in saved_split(run_dir, fmt_.records(), split):
        volumes.setdefault(rec.patient_id, []).append(rec)
    for recs in volumes.values():
        recs.sort(key=lambda r: slice_position(r) or 0)
    return fmt_, volumes


def score(run_dir: Path, split: str, inference: dict[str, Any]) -> dict[str, Any]:
    """Per-patient and pooled Dice of one run on one split at native resolution."""
    from braintumor.inference.predictor import Predictor
    from braintumor.inference.runs import load_run

    run = load_run(run_dir)
    card = run.card
    if inference:  # what-if on the card's levers (a diagnostic, never written back)
        card = {**card, "inference": {**(card.get("inference") or {}), **inference}}
    pred = Predictor(run.model, card, device="cpu")
    fmt_, volumes = split_volumes(run_dir, card, split)
    per_patient: dict[str, float] = {}
    inter = total = 0
    for pid, recs in sorted(volumes.items()):
        samples = [fmt_.load(r) for r in recs]
        probs = pred.predict_images([s["image"] for s in samples], volume=True)
        pr = np.stack([pred.masks(p)[0] > 0 for p in probs])
        gt = np.stack([s["mask"][0] > 0 for s in samples])
        i, t = int((pr & gt).sum()), int(pr.sum() + gt.sum())
        per_patient[pid] = 1.0 if t == 0 else 2.0 * i / t
        inter, total = inter + i, total + t
    values = list(per_patient.values())
    return {
        "run": str(run_dir),
        "split": split,
        "inference": pred.card.get("inference"),
        "dice_pooled": 2.0 * inter / total if total else 1.0,
        "dice_per_patient_mean": statistics.fmean(values),
        "dice_per_patient_median": statistics.median(values),
        "patients_at_0": sum(v == 0 for v in values),
        "per_patient": per_patient,
    }


def pooled(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result over every run's patients (out-of-fold for CV folds; pooled Dice is the
    mean of the runs' pooled Dice, as their voxel counts are not kept)."""
    per_patient = {p: v for r in results for p, v in r["per_patient"].items()}
    values = list(per_patient.values())
    return {
        "run": f"pooled over {len(results)} runs ({len(values)} patients)",
        "split": results[0]["split"],
        "inference": "each run's own (rows above)",
        "dice_pooled": statistics.fmean(r["dice_pooled"] for r in results),
        "dice_per_patient_mean": statistics.fmean(values),
        "dice_per_patient_median": statistics.median(values),
        "patients_at_0": sum(v == 0 for v in values),
        "per_patient": per_patient,
    }


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--inference", action="append", default=[], metavar="KEY=VALUE",
                    help="override one of the card's inference levers (diagnostic)")  # fmt: skip
    ap.add_argument("--pool", action="store_true",
                    help="also one row over all runs' patients (the folds of a CV)")  # fmt: skip
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tag", default="")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    inference = {}
    for item in args.inference:
        key, _, value = item.partition("=")
        inference[key.strip()] = yaml.safe_load(value)
    results = [score(run, args.split, inference) for run in args.runs]
    if args.pool:
        results.append(pooled(results))
    name = "_".join(dict.fromkeys(r.name for r in args.runs)) + (f"_{args.tag}" if args.tag else "")
    write_result(f"native_dice_{args.split}_{name}", {"results": results})
    rows = [
        [r["run"], r["inference"], fmt(r["dice_pooled"]), fmt(r["dice_per_patient_mean"]),
         fmt(r["dice_per_patient_median"]), r["patients_at_0"],
         ", ".join(f"{v:.2f}" for v in sorted(r["per_patient"].values()))]
        for r in results
    ]  # fmt: skip
    header = ["run", "inference levers", "Dice pooled", "per patient mean", "median", "at 0",
              "per patient, lowest first"]  # fmt: skip
    append_markdown(
        f"LGG Dice at native 256 px, {args.split} split",
        markdown_table(header, rows),
        "Each patient predicted as a volume by `Predictor` (the card's levers"
        + (f", overridden: {inference}" if inference else "")
        + "), probabilities restored to 256 x 256 and compared with the original masks. "
        + args.note,
    )
    for r in results:
        print(r["run"], {k: v for k, v in r.items() if k not in ("per_patient", "run")})


if __name__ == "__main__":
    main()
