"""Classification benchmark on the real data sets (not a test).

Trains each model with the project's one engine and reports test-split metrics:

- ``nickparvar``: every model on ``brain-tumor-mri`` at 128 px; trained on Training
  (val carved from Training only), evaluated on the official Testing folder;
- ``lgg``: tumor / no-tumor per slice on LGG with a patient-level split;
- ``navoneel``: the 253-image yes/no set with 5-fold patient-level cross-validation.

Each training has a wall-clock budget (``--minutes``; early stopping on val) so the
whole run fits on a laptop CPU. Results go to ``benchmarks/results/*.json`` and a
dated table in ``BENCHMARKS.md``.

Example::

    python benchmarks/classification.py --suite nickparvar --models custom_cnn --minutes 25
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import DEFAULT_DATA, ROOT, append_markdown, markdown_table, write_result

ALL_MODELS = ["simple_cnn", "custom_cnn", "alexnet", "vgg16", "vgg16_ft", "resnet50", "vit"]


def run_one(name: str, spec: str, model: str, out: Path, overrides: list[str]) -> dict:
    from braintumor.config import load_config
    from braintumor.engine.train import train

    cfg = load_config(
        None,
        [
            "task=classification",
            f"data.spec={spec}",
            f"model.name={model}",
            *overrides,
        ],
    )
    t0 = time.time()
    run = train(cfg, out, force=True)
    wall = time.time() - t0
    metrics_file = run / ("cv_metrics.json" if cfg.folds > 1 else "metrics.json")
    metrics = json.loads(metrics_file.read_text())
    metrics["wall_seconds"] = wall
    metrics["run"] = str(run)
    print(f"[{name}] {model}: {json.dumps({k: metrics.get(k) for k in ('accuracy', 'f1_macro')})}")
    return metrics


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--suite", choices=["nickparvar", "lgg", "navoneel", "all"], default="all")
    ap.add_argument("--models", nargs="*", default=ALL_MODELS)
    ap.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--minutes", type=float, default=5.0, help="training budget per model")
    ap.add_argument("--custom-minutes", type=float, default=25.0, help="budget for custom_cnn")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_cls")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()

    common = [
        f"data.image_size={args.image_size}",
        f"trainer.epochs={args.epochs}",
        "trainer.patience=6",
        "trainer.progress=false",
        "data.num_workers=0",
        *args.overrides,
    ]
    rows, results = [], {}
    header = [
        "data",
        "model",
        "accuracy",
        "bal. acc",
        "recall",
        "F1 w",
        "F1 macro",
        "precision",
        "confidence",
        "params",
        "train s",
        "epochs",
    ]

    def budget(model: str) -> list[str]:
        minutes = args.custom_minutes if model == "custom_cnn" else args.minutes
        return [f"trainer.max_minutes={minutes}"]

    jobs: list[tuple[str, str, str, list[str]]] = []
    if args.suite in ("nickparvar", "all"):
        spec = f"brain-tumor-mri:{args.data_root / 'brain-tumor-mri'}"
        jobs += [("nickparvar", spec, m, budget(m)) for m in args.models]
    if args.suite in ("lgg", "all"):
        spec = f"lgg:{args.data_root / 'lgg-mri-segmentation' / 'kaggle_3m'}"
        jobs += [
            ("lgg", spec, "custom_cnn", [f"trainer.max_minutes={args.minutes}", "data.channels=3"])
        ]
    if args.suite in ("navoneel", "all"):
        spec = f"image-folder:{args.data_root / 'brain-mri-detection'}"
        jobs += [
            (
                "navoneel-5fold",
                spec,
                "custom_cnn",
                ["folds=5", f"trainer.max_minutes={args.minutes / 5}"],
            )
        ]

    for name, spec, model, extra in jobs:
        m = run_one(name, spec, model, args.out / f"{name}_{model}", common + extra)
        results[f"{name}/{model}"] = m
        if "metrics" in m and "folds" in m:  # cross-validation summary: {name: {mean, std}}
            cv = m["metrics"]

            def cell(k: str, cv: dict = cv) -> str:
                v = cv.get(k, {})
                return f"{v.get('mean', float('nan')):.3f} ± {v.get('std', float('nan')):.3f}"

            keys = [
                "accuracy",
                "balanced_accuracy",
                "recall_macro",
                "f1_weighted",
                "f1_macro",
                "precision_macro",
                "confidence",
            ]
            rows.append(
                [
                    name,
                    model,
                    *[cell(k) for k in keys],
                    cv.get("params", {}).get("mean"),
                    cv.get("train_seconds", {}).get("mean"),
                    f"{m['folds']} folds",
                ]
            )
        else:
            rows.append(
                [
                    name,
                    model,
                    m["accuracy"],
                    m["balanced_accuracy"],
                    m["recall_macro"],
                    m["f1_weighted"],
                    m["f1_macro"],
                    m["precision_macro"],
                    m["confidence"],
                    m["params"],
                    m["train_seconds"],
                    m.get("epochs_trained", "–"),
                ]
            )
        write_result(f"classification_{args.suite}", {"results": results})

    notes = (
        "Test split: official Testing folder for brain-tumor-mri (note: 101 Testing files are "
        "byte-identical to Training files, see `braintumor inspect`), patient-level split for LGG, "
        "5-fold patient-level CV (mean ± std) for navoneel. Models trained from scratch "
        "(no ImageNet weights offline). Model selection and early stopping on the val split only. "
        f"Budget: {args.minutes} min per model ({args.custom_minutes} for custom_cnn)."
    )
    append_markdown(f"Classification ({args.suite})", markdown_table(header, rows), notes)


if __name__ == "__main__":
    main()
