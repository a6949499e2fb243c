"""Robustness of LGG runs to the two failure modes seen on held-out patients, on VAL.

None of the 7 validation patients has a dark scan or FLAIR repeated in every channel,
so the robustness levers cannot show on the plain validation Dice. This script makes
the validation patients look like the failures and scores each run on them:

- ``dark``: every image channel x 0.2 (a scan ~5x darker than usual). A run trained
  with per-volume normalisation is invariant to this by construction (its images are
  scaled by the volume's own percentile), so it is scored unchanged;
- ``flair``: pre- and post-contrast replaced by FLAIR (sequences missing).

Example::

    python benchmarks/val_stress.py runs/ablation/segresnet runs/ablation_b/channel_swap
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS, append_markdown, markdown_table, write_result
from val_levers import per_patient_dice, val_predictions


def _dark(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[:, :3] *= 0.2
    x[:, 3:] *= 0.2  # 2.5D neighbour channels are FLAIR of the same scan
    return x


def _flair(x: torch.Tensor) -> torch.Tensor:
    x = x.clone()
    x[:, 0] = x[:, 1]
    x[:, 2] = x[:, 1]
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--note", default="")
    ap.add_argument("--merge", action="store_true", help="add to the existing result file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results: dict = {}
    old = RESULTS / "val_stress_lgg.json"
    if args.merge and old.is_file():
        results = json.loads(old.read_text())["results"]
    for run in args.runs:
        card = json.loads((run / "model.json").read_text())
        per_volume = bool((card.get("normalisation") or {}).get("per_volume"))
        row: dict[str, float] = {}
        for name, stress in (("plain", None), ("dark", _dark), ("flair", _flair)):
            if name == "dark" and per_volume:
                stress = None  # invariant by construction (see the docstring)
            v = val_predictions(run, tta=False, stress=stress)
            masks = [p > 0.5 for p in v["probs"]]
            row[name] = float(np.mean(per_patient_dice(masks, v["truth"], v["patients"])))
        results[run.name] = row
        print(run.name, row, flush=True)
        write_result("val_stress_lgg", {"note": args.note, "results": results})
    rows = [[k, r["plain"], r["dark"], r["flair"]] for k, r in results.items()]
    append_markdown(
        "LGG robustness on val (dark scan, FLAIR in every channel)",
        markdown_table(["run", "val Dice/patient", "x0.2 intensities", "FLAIR only"], rows),
        "Mean per-patient Dice on the 7 validation patients, each altered as named. " + args.note,
    )


if __name__ == "__main__":
    main()
