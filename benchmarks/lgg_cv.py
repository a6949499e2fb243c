"""3-fold patient cross-validation of the shipped LGG recipe: out-of-fold per-patient Dice.

Seven test patients make a noisy figure (one small tumor moves the mean by ~0.06).
Here every one of the 46 patients is a test patient exactly once: the recipe's
config is trained on each fold with a third of its time budget (by default), the
validation patients of each fold come from its training patients only, and the
per-patient Dice of the three held-out folds are pooled into one list: mean, median,
patients below 0.5 and at 0.

Example (the headline run, ~60 minutes on a quiet 2-core machine)::

    python benchmarks/lgg_cv.py --config src/braintumor/configs/lgg_seg.yaml
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from _common import DEFAULT_DATA, ROOT, append_markdown, markdown_table, write_result


def out_of_fold(out: Path, folds: int) -> dict[str, float]:
    """Each patient's test Dice from the fold that held it out."""
    dice: dict[str, float] = {}
    for i in range(folds):
        metrics = json.loads((out / f"fold_{i}" / "metrics.json").read_text())
        for pid, row in (metrics.get("per_patient") or {}).items():
            value = next((v for k, v in row.items() if k.startswith("dice_")), None)
            dice[pid] = float(value) if value is not None else float("nan")
    return dice


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", type=Path, default=ROOT / "src/braintumor/configs/lgg_seg.yaml")
    ap.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=None, help="per fold (default: budget/folds)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "lgg_cv")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from braintumor.config import load_config
    from braintumor.engine.train import train

    base = load_config(args.config)
    minutes = args.minutes or (base.trainer.max_minutes or 60.0) / args.folds
    spec = f"lgg:{args.data_root / 'lgg-mri-segmentation' / 'kaggle_3m'}"
    sets = [f"data.spec={spec}", f"folds={args.folds}", f"trainer.max_minutes={minutes}"]
    cfg = load_config(args.config, [*sets, "trainer.progress=false", *args.overrides])
    train(cfg, args.out, force=True)
    dice = out_of_fold(args.out, args.folds)
    values = [v for v in dice.values() if v == v]
    summary = {
        "patients": len(dice),
        "mean": statistics.fmean(values) if values else None,
        "median": statistics.median(values) if values else None,
        "below_0.5": sum(v < 0.5 for v in values),
        "zero": sum(v == 0.0 for v in values),
        "minutes_per_fold": minutes,
    }
    print(json.dumps(summary))
    name = "lgg_cv" + (f"_{args.tag}" if args.tag else "")
    write_result(name, {"config": str(args.config), "summary": summary, "per_patient": dice})
    header = ["patients", "mean Dice", "median", "< 0.5", "= 0", "minutes / fold"]
    row = [summary[k] for k in ("patients", "mean", "median", "below_0.5", "zero")] + [minutes]
    append_markdown(
        f"LGG {args.folds}-fold patient CV ({args.config.name})",
        markdown_table(header, [row]),
        "Out-of-fold per-patient (volume) Dice: each patient scored once, by the fold "
        "that held it out; val patients carved from each fold's training patients.",
    )


if __name__ == "__main__":
    main()
