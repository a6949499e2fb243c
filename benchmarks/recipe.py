"""Report a finished run of a shipped recipe: the figures the README's quality table quotes.

The run is made by the recipe itself (nothing is trained here), e.g.::

    braintumor train --config src/braintumor/configs/lgg_seg.yaml \
        --data lgg:../shared/datasets/lgg-mri-segmentation/kaggle_3m --out runs/lgg_seg
    python benchmarks/recipe.py runs/lgg_seg --note "quiet machine"

Reads ``RUN/metrics.json`` (test split, read once at the end of training; the epoch
and any inference levers were chosen on val) and writes
``benchmarks/results/recipe_<run>.json`` and a dated section in BENCHMARKS.md with
the headline metrics, the levers' validation table and every test patient's Dice.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from _common import append_markdown, fmt, markdown_table, write_result

HEAD = ("dice", "dice_per_patient_mean", "iou", "hd95", "fpr", "fnr", "accuracy",
        "balanced_accuracy", "f1_macro")  # fmt: skip


def _patient_dice(row: dict | float | None) -> float | None:
    """A patient's Dice (``dice_<channel>``; the mean over channels when several)."""
    if not isinstance(row, dict):
        return row
    vals = [v for k, v in row.items() if k.startswith("dice") and v is not None]
    return sum(vals) / len(vals) if vals else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    m = json.loads((args.run / "metrics.json").read_text())
    cfg = (args.run / "config.yaml").read_text()
    per = m.get("per_patient") or {}
    dice = {pid: _patient_dice(row) for pid, row in per.items()}
    values = [v for v in dice.values() if v is not None]
    summary = {k: m.get(k) for k in HEAD if m.get(k) is not None} | {
        "epochs_trained": m.get("epochs_trained"),
        "best_epoch": m.get("best_epoch"),
        "train_minutes": round(float(m.get("train_seconds", 0)) / 60, 1),
        "n_test": m.get("n"),
        "n_patients": len(values) or m.get("n_patients"),
    }
    if values:
        summary |= {
            "dice_per_patient_median": statistics.median(values),
            "patients_below_0.5": sum(v < 0.5 for v in values),
            "patients_at_0": sum(v == 0 for v in values),
        }
    levers = m.get("levers") or {}
    write_result(
        f"recipe_{args.run.name}",
        {"summary": summary, "per_patient_dice": dice, "levers": levers, "config": cfg},
    )
    rows = [[k, fmt(v)] for k, v in summary.items()]
    notes = [args.note] if args.note else []
    if levers:
        chosen = (
            f"tta={levers.get('tta')}, min_component_voxels={levers.get('min_component_voxels')}"
            f", keep_largest={levers.get('keep_largest', False)}"
        )
        monitor = next((k for k in (levers.get("val_table") or [{}])[0] if k not in
                        ("tta", "min_component_voxels", "keep_largest")), None)  # fmt: skip
        table = markdown_table(
            ["tta", "min 3-D component (voxels)", "keep largest", f"val {monitor}"],
            [
                [
                    r["tta"],
                    r["min_component_voxels"],
                    r.get("keep_largest", False),
                    fmt(r.get(monitor)),
                ]
                for r in levers.get("val_table", [])
            ],  # fmt: skip
        )
        notes.append(f"Levers chosen on val: {chosen}. Validation table:\n\n{table}")
    if dice:
        listing = ", ".join(
            f"{pid} {fmt(v, 2)}" for pid, v in sorted(dice.items(), key=lambda x: x[1] or 0)
        )
        notes.append(f"Per test patient Dice (volume), lowest first: {listing}.")
    append_markdown(
        f"Recipe run {args.run.name}",
        markdown_table(["test metric", "value"], rows),
        "\n\n".join(notes),
    )
    print(json.dumps(summary, indent=2, default=float))


if __name__ == "__main__":
    main()
