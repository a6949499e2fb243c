"""LGG segmentation ablations on the VALIDATION split, at a fixed number of epochs.

Each variant is the same base recipe plus a few ``--set`` overrides. Runs are fixed
in epochs, not minutes, so that a machine shared with other jobs changes the time a
variant takes but not what it learns; the table reports validation figures of the
epoch selected on validation per-patient Dice. The test split is never read for the
table (``train`` still scores it into each run's metrics.json; this script ignores it).

Example::

    python benchmarks/ablation.py --variants segresnet unet --epochs 8
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from _common import DEFAULT_DATA, ROOT, append_markdown, markdown_table, write_result

BASE = [
    "task=segmentation",
    "loss=dice_bce",
    "data.channels=3",
    "data.image_size=128",
    "trainer.monitor=dice_per_patient_mean",
    "trainer.progress=false",
    "model.name=segresnet",
]
# name -> overrides on top of BASE (later names may build on levers that won earlier).
VARIANTS: dict[str, list[str]] = {
    "segresnet": [],
    "unet": ["model.name=unet", "model.kwargs={batch_norm: true}"],
    "resunet": ["model.name=resunet"],
    "intensity_aug": ["data.intensity_aug=true"],
    "channel_swap": ["data.channel_dropout=0.2"],
    "volume_norm": ["data.options={normalize: volume}"],
    "neighbours": ["data.neighbours=1"],
    "oversample": ["data.oversample_tumor=2.0"],
    "ema": ["trainer.ema_decay=0.99"],
}


def val_row(run: Path) -> dict:
    """Validation figures of the epoch the run selected (best val per-patient Dice)."""
    metrics = json.loads((run / "metrics.json").read_text())
    with (run / "history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    key = "val_dice_per_patient_mean"
    best = max(rows, key=lambda r: float(r.get(key) or "nan") if r.get(key) else -1.0)
    return {
        "val_dice_patient": float(best[key]),
        "val_dice_image": float(best.get("val_dice") or "nan"),
        "best_epoch": int(float(best["epoch"])),
        "epochs": len(rows),
        "train_seconds": metrics.get("train_seconds"),
        "params": metrics.get("params"),
    }


HEADER = ["variant", "val Dice (patient)", "val Dice (img)", "best ep", "epochs", "train s"]


def table_row(variant: str, r: dict) -> list:
    return [variant, r["val_dice_patient"], r["val_dice_image"], r["best_epoch"], r["epochs"]] + [
        r["train_seconds"],
        " ".join(r["overrides"]) or "–",
    ]


def collect(tags: list[str], epochs: int, note: str) -> None:
    """One BENCHMARKS.md table from the result files of several (parallel) queues."""
    from _common import RESULTS

    rows = []
    for tag in tags:
        data = json.loads((RESULTS / f"ablation_lgg_{tag}.json").read_text())
        rows += [table_row(v, r) for v, r in data["results"].items()]
    notes = (
        "Validation split only (7 patients), epoch selected on val per-patient Dice; fixed "
        f"epochs ({epochs}), 128 px, 3 channels, dice_bce, segresnet unless named. {note}"
    )
    append_markdown("LGG ablation on val", markdown_table([*HEADER, "overrides"], rows), notes)


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "ablation")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--tag", default="", help="suffix of the result file name")
    ap.add_argument("--note", default="", help="e.g. 'shared machine' (goes into BENCHMARKS.md)")
    ap.add_argument(
        "--collect", nargs="*", default=None, help="only tabulate these result tags (no training)"
    )
    args = ap.parse_args()
    if args.collect is not None:
        collect(args.collect, args.epochs, args.note)
        return
    torch.set_num_threads(args.threads)
    from braintumor.config import load_config
    from braintumor.engine.train import train

    spec = f"data.spec=lgg:{args.data_root / 'lgg-mri-segmentation' / 'kaggle_3m'}"
    name = "ablation_lgg" + (f"_{args.tag}" if args.tag else "")
    results, rows = {}, []
    for variant in args.variants:
        extra = VARIANTS.get(variant)
        if extra is None:  # "a+b": combine variants
            extra = [o for part in variant.split("+") for o in VARIANTS[part]]
        sets = [*BASE, spec, f"trainer.epochs={args.epochs}", *extra, *args.overrides]
        t0 = time.time()
        try:
            run = train(load_config(None, sets), args.out / variant, force=True)
        except Exception as exc:  # noqa: BLE001 - one broken variant must not stop the rest
            print(f"{variant}: failed: {exc}", flush=True)
            continue
        r = val_row(run) | {"wall_seconds": round(time.time() - t0, 1), "overrides": extra}
        results[variant] = r
        print(f"{variant}: {r}", flush=True)
        rows.append(table_row(variant, r))
        write_result(name, {"note": args.note, "results": results})
    header = [*HEADER, "overrides"]
    notes = (
        "Validation split only (7 patients), epoch selected on val per-patient Dice; fixed "
        f"epochs ({args.epochs}), 128 px, 3 channels, dice_bce. {args.note}"
    )
    append_markdown(
        f"LGG ablation on val ({args.tag or 'levers'})", markdown_table(header, rows), notes
    )


if __name__ == "__main__":
    main()
