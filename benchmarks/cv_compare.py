"""Compare two cross-validations of a recipe fold by fold, deciding on VALIDATION only.

Each fold of ``benchmarks/lgg_cv.py`` carves its val patients from its own training
patients, so the folds' val splits together hold about twice the 7 patients of one
run's val split, and none of them is a test patient of that fold. This script lines up
a baseline CV and an arm CV (same folds: same config seed and fold count) and applies a
rule fixed in advance: the arm is adopted when its val monitor (the selected epoch's
value, ``best_val``) beats the baseline's by more than ``--min-gain`` on average over
the folds and in a majority of them. The held-out folds' test figures are printed
beside, read after the decision, never used for it.

Example::

    python benchmarks/cv_compare.py runs/lgg_cv runs/lgg_cv_nb2 --tag neighbours2
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from _common import append_markdown, fmt, markdown_table, write_result
from lgg_cv import out_of_fold


def folds(cv_dir: Path) -> list[dict[str, Any]]:
    """Each fold's metrics.json, in fold order."""
    dirs = sorted(cv_dir.glob("fold_*"), key=lambda d: int(d.name.split("_")[1]))
    if not dirs:
        raise SystemExit(f"{cv_dir} has no fold_* folders; give a benchmarks/lgg_cv.py --out")
    return [json.loads((d / "metrics.json").read_text()) for d in dirs]


def decide(base: list[float], arm: list[float], min_gain: float) -> bool:
    """The rule: mean val gain above ``min_gain`` and a gain in most folds."""
    gains = [a - b for a, b in zip(arm, base, strict=True)]
    return statistics.fmean(gains) > min_gain and sum(g > 0 for g in gains) * 2 > len(gains)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("base", type=Path)
    ap.add_argument("arm", type=Path)
    ap.add_argument("--min-gain", type=float, default=0.01)
    ap.add_argument("--tag", default="")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    b, a = folds(args.base), folds(args.arm)
    if len(a) != len(b):
        raise SystemExit(f"{args.base} has {len(b)} folds and {args.arm} {len(a)}")
    bv, av = [m["best_val"] for m in b], [m["best_val"] for m in a]
    adopted = decide(bv, av, args.min_gain)
    rows = [
        [i, fmt(x["best_val"]), fmt(y["best_val"]),
         f"{x['epochs_trained']} / {y['epochs_trained']}",
         f"{fmt(x['dice_per_patient_mean'])} / {fmt(y['dice_per_patient_mean'])}"]
        for i, (x, y) in enumerate(zip(b, a, strict=True))
    ]  # fmt: skip
    oof = [statistics.fmean(v for v in out_of_fold(d, len(b)).values() if v == v)
           for d in (args.base, args.arm)]  # fmt: skip
    rows.append(["mean", fmt(statistics.fmean(bv)), fmt(statistics.fmean(av)), "",
                 f"out of fold {fmt(oof[0])} / {fmt(oof[1])}"])  # fmt: skip
    monitor = b[0].get("monitor", "val monitor")
    write_result(
        "cv_compare" + (f"_{args.tag}" if args.tag else ""),
        {"base": str(args.base), "arm": str(args.arm), "min_gain": args.min_gain,
         "base_val": bv, "arm_val": av, "adopted": adopted, "out_of_fold_mean": oof},
    )  # fmt: skip
    verdict = "adopted" if adopted else "not adopted"
    append_markdown(
        f"CV arm against baseline, decided on val ({args.arm.name} vs {args.base.name})",
        markdown_table(
            ["fold", f"{monitor}: base", "arm", "epochs base / arm", "test fold base / arm"],
            rows,
        ),
        f"Rule, fixed before reading: adopt when the arm's val (best epoch) beats the "
        f"baseline by more than {args.min_gain} on average and in most folds: **{verdict}**. "
        "Test-fold figures (volume Dice at the model's resolution, each fold's own levers) "
        "are read after the decision. " + args.note,
    )
    print(verdict, {"base_val": bv, "arm_val": av, "out_of_fold": oof})


if __name__ == "__main__":
    main()
