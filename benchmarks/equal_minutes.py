"""Compare settings of one shipped recipe at equal training minutes, on the VALIDATION split.

Each arm is the recipe plus ``--set`` overrides (e.g. ``trainer.precision=bf16-mixed``), run
once per seed with ``trainer.max_minutes`` set, so the LR schedule spans the same minutes in
every arm and a faster arm simply fits more epochs. One ``braintumor train`` process per run,
one at a time. The table reports the recipe's monitor on val (best epoch and last epoch) and
the seed spread; the test split is scored by each run but never read here.

Example (issue 9: may bf16 be the CPU training default?)::

    python benchmarks/equal_minutes.py --config src/braintumor/configs/lgg_seg.yaml \\
        --data lgg:../shared/datasets/lgg-mri-segmentation/kaggle_3m --minutes 8 \\
        --arm fp32=trainer.precision=32-true --arm bf16=trainer.precision=bf16-mixed \\
        --seeds 42 43 44
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT, append_markdown, markdown_table, write_result


def monitor_of(config: Path) -> str:
    from braintumor.config import load_config
    from braintumor.engine.tasks import TASKS

    cfg = load_config(config, [])
    return cfg.trainer.monitor or TASKS[cfg.task].monitor  # None: the task's default


def val_figures(run: Path, monitor: str) -> dict:
    with (run / "history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    key = f"val_{monitor}"
    scored = [r for r in rows if r.get(key) not in (None, "")]
    if not scored:
        raise SystemExit(f"{run}: history.csv has no {key} column; check --config's monitor")
    best = max(scored, key=lambda r: float(r[key]))
    metrics = json.loads((run / "metrics.json").read_text())
    losses = [float(r["val_loss"]) for r in rows if r.get("val_loss") not in (None, "")]
    return {
        "epochs": len(rows),
        "best_epoch": int(float(best["epoch"])),
        "best_val": float(best[key]),
        "last_val": float(scored[-1][key]),
        # The val loss is a smoother signal than a metric over a few val patients.
        "min_val_loss": min(losses) if losses else None,
        "last_val_loss": losses[-1] if losses else None,
        "train_seconds": metrics.get("train_seconds"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--data", required=True, help="FORMAT:PATH, as for braintumor train")
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument(
        "--arm", action="append", required=True, help="NAME=key=value[,key=value...] (repeatable)"
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "equal_minutes")
    ap.add_argument("--tag", default="", help="suffix of the result file name")
    ap.add_argument("--note", default="", help="goes into BENCHMARKS.md (e.g. machine state)")
    ap.add_argument(
        "--collect", action="store_true", help="only tabulate the run folders (no training)"
    )
    args = ap.parse_args()

    arms = {}
    for spec in args.arm:
        name, _, sets = spec.partition("=")
        if not sets:
            raise SystemExit(f"--arm {spec!r}: expected NAME=key=value[,key=value...]")
        arms[name] = sets.split(",")
    monitor = monitor_of(args.config)
    results: dict[str, dict[str, dict]] = {name: {} for name in arms}
    name = "equal_minutes_" + (args.tag or args.config.stem)
    for seed in args.seeds:  # seeds outermost: a cut-short run still has matched pairs
        for arm, sets in arms.items():
            run = args.out / f"{args.config.stem}_{arm}_{seed}"
            cmd = [sys.executable, "-m", "braintumor", "train", "--config", str(args.config)]
            cmd += ["--data", args.data, "--out", str(run), "--force", "--seed", str(seed)]
            for s in [f"trainer.max_minutes={args.minutes}", "trainer.progress=false"]:
                cmd += ["--set", s]
            for s in [*sets, *args.overrides]:
                cmd += ["--set", s]
            t0 = time.time()
            if args.collect:
                if not (run / "metrics.json").is_file():
                    continue
            else:
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode:
                    print(f"{arm} seed {seed}: failed:\n{proc.stderr[-2000:]}", flush=True)
                    continue
            r = val_figures(run, monitor) | {"wall_seconds": round(time.time() - t0, 1)}
            results[arm][str(seed)] = r
            print(f"{arm} seed {seed}: {r}", flush=True)
            write_result(name, {"config": str(args.config), "arms": arms, "results": results})

    rows = []
    for arm, by_seed in results.items():
        for seed, r in by_seed.items():
            rows.append(
                [seed, arm, r["epochs"], r["best_epoch"], r["best_val"], r["last_val"]]
                + [r["min_val_loss"], r["last_val_loss"], round((r["train_seconds"] or 0) / 60, 1)]
            )
    summary = []
    for arm, by_seed in results.items():
        for what in ("best_val", "last_val", "last_val_loss"):
            vals = [r[what] for r in by_seed.values() if r[what] is not None]
            if vals:
                sd = statistics.stdev(vals) if len(vals) > 1 else float("nan")
                summary.append(f"{arm} {what}: mean {statistics.mean(vals):.4f} (sd {sd:.4f})")
    header = ["seed", "arm", "epochs", "best epoch", f"best val {monitor}", "last val"]
    header += ["min val loss", "last val loss", "train min"]
    arm_text = "; ".join(f"{a}: {' '.join(s)}" for a, s in arms.items())
    notes = (
        f"Recipe `{args.config}` at {args.minutes} equal training minutes (the schedule spans "
        f"them); arms: {arm_text}. Validation "
        f"split only; seed spread as sd over seeds. {'; '.join(summary)}. {args.note}"
    )
    write_result(name, {"config": str(args.config), "arms": arms, "results": results})
    append_markdown(
        f"Equal minutes, val split ({args.config.stem})", markdown_table(header, rows), notes
    )


if __name__ == "__main__":
    main()
