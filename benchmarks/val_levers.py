"""Inference-time levers of a trained LGG segmenter, chosen on the VALIDATION split.

For one run: per-patient Dice on the val patients without and with flip TTA, with
3-D connected-component post-processing at several minimum sizes (each with and
without keeping a volume's largest component when all are smaller), and tumor /
no-tumor detection read off the segmenter (max probability or predicted area,
threshold swept) with its per-slice balanced accuracy. The chosen size and
threshold are what a config or ``pipeline --classifier segmenter --threshold T``
should use. The test split is not read.

Example::

    python benchmarks/val_levers.py runs/ablation/segresnet
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from _common import append_markdown, markdown_table, write_result

SIZES = [0, 10, 40, 160, 320, 640]
THRESHOLDS = {
    "max": [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98],
    "area": [0.0, 0.0005, 0.001, 0.002, 0.004, 0.008],
}


def val_predictions(
    run_dir: Path, tta: bool, stress: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> dict[str, list]:
    """Val-split probabilities of a run; ``stress`` alters the prepared images first."""
    from braintumor.data import create_format
    from braintumor.data.dataset import SliceDataset
    from braintumor.data.stacking import slice_position
    from braintumor.engine.evaluate import saved_split
    from braintumor.inference.runs import load_run
    from braintumor.inference.tta import flip_tta

    run = load_run(run_dir)
    card, pre = run.card, run.card["preprocessing"]
    fmt = create_format(card["data"]["spec"], **card["data"]["options"])
    recs = saved_split(run_dir, fmt.records(), "val")
    ds = SliceDataset(
        fmt,
        recs,
        int(pre["image_size"]),
        int(pre["channels"]),
        bool(pre["crop"]),
        neighbours=int(pre.get("neighbours", 0)),
    )
    model = run.model.eval()

    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(model(x))

    probs, truth = [], []
    with torch.no_grad():
        for i in range(0, len(ds), 32):
            items = [ds[j] for j in range(i, min(i + 32, len(ds)))]
            x = torch.stack([it["image"] for it in items])
            if stress is not None:
                x = stress(x)
            p = flip_tta(forward, x) if tta else forward(x)
            probs += list(p[:, 0].numpy())
            truth += [it["mask"][0].numpy() > 0.5 for it in items]
    return {
        "probs": probs,
        "truth": truth,
        "patients": [r.patient_id for r in recs],
        "order": [slice_position(r) or 0 for r in recs],
    }


def per_patient_dice(masks: list[np.ndarray], truth: list[np.ndarray], patients: list[str]) -> list:
    out = []
    for pid in sorted(set(patients)):
        idx = [i for i, p in enumerate(patients) if p == pid]
        pr = np.stack([masks[i] for i in idx])
        gt = np.stack([truth[i] for i in idx])
        den = pr.sum() + gt.sum()
        out.append(1.0 if den == 0 else 2.0 * (pr & gt).sum() / den)
    return out


def balanced_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    tpr = (pred & truth).sum() / max(1, truth.sum())
    tnr = (~pred & ~truth).sum() / max(1, (~truth).sum())
    return float((tpr + tnr) / 2)


def main() -> None:
    from braintumor.inference.postprocess import per_patient
    from braintumor.pipeline.seg_gate import detection_score

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results: dict = {"run": str(args.run), "note": args.note}
    rows = []
    for tta in (False, True):
        v = val_predictions(args.run, tta)
        masks = [p > 0.5 for p in v["probs"]]
        has = np.array([t.any() for t in v["truth"]])
        best: tuple[float, int, list] = (-1.0, 0, masks)
        for size in SIZES:
            for keep in (False, True) if size > 1 else (False,):
                kept = [
                    k.astype(bool)
                    for k in per_patient(masks, v["patients"], v["order"], size, keep)
                ]
                d = per_patient_dice(kept, v["truth"], v["patients"])
                # Detection by the segmenter alone: a slice is "tumor" when its kept mask is
                # not empty.
                ba = balanced_accuracy(np.array([k.any() for k in kept]), has)
                key = f"tta={tta} min_voxels={size}" + (" keep_largest" if keep else "")
                results[key] = {
                    "mean": float(np.mean(d)),
                    "median": float(np.median(d)),
                    "all": d,
                    "balanced_accuracy_nonempty": ba,
                }
                label = f"flip TTA {'on' if tta else 'off'}, drop < {size} voxels"
                rows.append(
                    [label + (", keep largest" if keep else "")]
                    + [float(np.mean(d)), float(np.median(d)), min(d), ba]
                )
                if float(np.mean(d)) > best[0] + 0.002:
                    best = (float(np.mean(d)), size, kept)
        # The pipeline's gate reads the post-processed probabilities of a volume: sweep
        # its thresholds at the component size chosen above (Dice on val).
        size, kept = best[1], best[2]
        probs = [p * k for p, k in zip(v["probs"], kept, strict=True)]
        masks = kept
        results[f"tta={tta} gate_min_voxels"] = size
        # What the segmenter alone gets wrong: true tumor sizes of the slices it leaves
        # empty, predicted sizes of the healthy slices it marks (pixels at 128 px).
        results[f"tta={tta} missed_tumor_pixels"] = sorted(
            int(t.sum()) for t, k in zip(v["truth"], kept, strict=True) if t.any() and not k.any()
        )
        results[f"tta={tta} false_alarm_pixels"] = sorted(
            int(k.sum()) for t, k in zip(v["truth"], kept, strict=True) if k.any() and not t.any()
        )
        for score, grid in THRESHOLDS.items():
            s = np.array([detection_score(p[None], score) for p in probs])
            for th in grid:
                keep = s > th if score == "area" else s >= th
                ba = balanced_accuracy(keep, has)
                # The gated pipeline: slices the detector calls healthy get an empty mask.
                gated = [m & k for m, k in zip(masks, keep, strict=True)]
                d = per_patient_dice(gated, v["truth"], v["patients"])
                results[f"tta={tta} detect {score}>={th}"] = {
                    "balanced_accuracy": ba,
                    "gated_mean": float(np.mean(d)),
                    "gated_median": float(np.median(d)),
                    "all": d,
                }
                label = f"flip TTA {'on' if tta else 'off'}, drop < {size}, gate: {score} >= {th}"
                rows.append([label, float(np.mean(d)), float(np.median(d)), min(d), ba])
        write_result("val_levers_lgg", results)
    header = ["lever (val split)", "Dice/patient mean", "median", "min", "detection bal. acc"]
    note = (
        "Validation patients only; sizes in voxels at the model's 128 px. Detection on the "
        "'drop' rows: a slice is tumor when its post-processed mask is not empty (the "
        "segmenter alone); the gate rows threshold the post-processed probabilities at the "
        "component size that won on val Dice (the pipeline's segmenter gate on a volume). "
    )
    append_markdown(
        f"LGG inference levers on val ({args.run.name})",
        markdown_table(header, rows),
        note + args.note,
    )


if __name__ == "__main__":
    main()
