"""Segmentation benchmark on the real data sets (not a test).

- ``lgg``: every segmentation model with ``dice_bce`` at 128 px on the 46 LGG patients,
  patient-level train/val/test split; per-image and per-patient Dice (Buda et al.
  report per-patient Dice on volumes), IoU, HD95, FPR, FNR, params, train time.
- ``losses``: BCE vs Dice vs MSE vs Dice+BCE on one model.
- ``brats``: the 3-region pipeline end to end on the BraTS 2021 sample case and on
  synthetic data (a smoke benchmark: one case cannot be split by patient).

Example::

    python benchmarks/segmentation.py --suite lgg --models unet --minutes 30
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import DEFAULT_DATA, ROOT, append_markdown, markdown_table, write_result

ALL_MODELS = [
    "unet",
    "unet_transposed",
    "improved_unet",
    "attention_unet",
    "resunet",
    "basic_unet",
    "segresnet",
]


def run_one(spec: str, model: str, loss: str, out: Path, overrides: list[str]) -> dict:
    from braintumor.config import load_config
    from braintumor.engine.train import train

    cfg = load_config(
        None,
        [
            "task=segmentation",
            f"data.spec={spec}",
            f"model.name={model}",
            f"loss={loss}",
            *overrides,
        ],
    )
    t0 = time.time()
    run = train(cfg, out, force=True)
    m = json.loads((run / "metrics.json").read_text())
    m["wall_seconds"] = time.time() - t0
    m["run"] = str(run)
    print(f"{model}/{loss}: dice={m.get('dice')} per-patient={m.get('dice_per_patient_mean')}")
    return m


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--suite", choices=["lgg", "losses", "brats", "all"], default="all")
    ap.add_argument("--models", nargs="*", default=ALL_MODELS)
    ap.add_argument("--loss-model", default="unet")
    ap.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--minutes", type=float, default=5.0, help="training budget per model")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_seg")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--tag", default="", help="suffix of the result file name")
    args = ap.parse_args()
    result_name = f"segmentation_{args.suite}" + (f"_{args.tag}" if args.tag else "")

    common = [
        f"data.image_size={args.image_size}",
        f"trainer.epochs={args.epochs}",
        f"trainer.max_minutes={args.minutes}",
        "trainer.patience=8",
        "trainer.progress=false",
        *args.overrides,
    ]
    lgg = f"lgg:{args.data_root / 'lgg-mri-segmentation' / 'kaggle_3m'}"
    header = [
        "data",
        "model",
        "loss",
        "Dice (img)",
        "Dice (patient)",
        "IoU",
        "HD95 px",
        "FPR",
        "FNR",
        "params",
        "train s",
    ]
    rows, results = [], {}
    jobs: list[tuple[str, str, str, str, list[str]]] = []
    if args.suite in ("lgg", "all"):
        jobs += [("lgg", lgg, m, "dice_bce", ["data.channels=3"]) for m in args.models]
    if args.suite in ("losses", "all"):
        jobs += [
            ("lgg-loss", lgg, args.loss_model, loss, ["data.channels=3"])
            for loss in ("bce", "dice", "mse", "dice_bce")
        ]
    brats_jobs = args.suite in ("brats", "all")
    for name, spec, model, loss, extra in jobs:
        m = run_one(spec, model, loss, args.out / f"{name}_{model}_{loss}", common + extra)
        results[f"{name}/{model}/{loss}"] = m
        rows.append(
            [
                name,
                model,
                loss,
                m.get("dice"),
                m.get("dice_per_patient_mean"),
                m.get("iou"),
                m.get("hd95"),
                m.get("fpr"),
                m.get("fnr"),
                m.get("params"),
                m.get("train_seconds"),
            ]
        )
        write_result(result_name, {"results": results})

    if brats_jobs:
        # One BraTS case cannot be split by patient: train the 4-modality region model on
        # synthetic phantoms (WT/TC/ET), then evaluate it on every brain slice of the real
        # case. This checks the 3-region pipeline end to end; the score measures transfer
        # from phantoms to a real scan, not what the model would reach trained on BraTS.
        from braintumor.engine.evaluate import evaluate_run

        spec = "synthetic"
        extra = [
            "data.options={target: regions, n_patients: 120, slices_per_patient: 6}",
            "data.augment=false",
        ]
        m = run_one(spec, "unet", "dice_bce", args.out / "synthetic-regions_unet", common + extra)
        results["synthetic-regions/unet/dice_bce"] = m
        rows.append(
            [
                "synthetic (WT/TC/ET)",
                "unet",
                "dice_bce",
                m.get("dice"),
                m.get("dice_per_patient_mean"),
                m.get("iou"),
                m.get("hd95"),
                m.get("fpr"),
                m.get("fnr"),
                m.get("params"),
                m.get("train_seconds"),
            ]
        )
        ev = evaluate_run(
            m["run"],
            f"brats:{args.data_root / 'brats2021-sample'}",
            "test",
            {"target": "regions", "skip_empty": "brain"},
        )
        results["brats2021-sample/eval-of-synthetic-unet"] = ev
        rows.append(
            [
                "BraTS 2021 case 00006 (eval only)",
                "unet (synthetic-trained)",
                "dice_bce",
                ev.get("dice"),
                ev.get("dice_per_patient_mean"),
                ev.get("iou"),
                ev.get("hd95"),
                ev.get("fpr"),
                ev.get("fnr"),
                ev.get("params"),
                "–",
            ]
        )
        write_result(result_name, {"results": results})

    notes = (
        "Dice (img): mean over test images of per-image Dice (empty truth and empty prediction "
        "count as 1). Dice (patient): the test patient's slices stacked into one volume, Dice per "
        "patient, mean over patients (as Buda et al. 2019). Selection on val only. "
        f"Budget {args.minutes} min per model on this machine."
    )
    append_markdown(f"Segmentation ({args.suite})", markdown_table(header, rows), notes)


if __name__ == "__main__":
    main()
