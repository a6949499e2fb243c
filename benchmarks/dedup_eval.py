"""Re-score a brain-tumor-mri classifier on the Testing files that are NOT in Training.

The Nickparvar set has Testing images byte-identical to Training images (101 of the
640 here; ``braintumor inspect`` finds them). A model that memorised those gets them
right for free, so the headline test accuracy is inflated. This script scores the
run on the de-duplicated Testing set (exact SHA-1 of file bytes) and appends both
figures to BENCHMARKS.md.

Example::

    python benchmarks/dedup_eval.py runs/bench_cls/nickparvar_custom_cnn
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
from _common import DEFAULT_DATA, append_markdown, markdown_table, write_result


def sha1(path: str) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    args = ap.parse_args()

    from braintumor.data import create_format
    from braintumor.inference.predictor import Predictor
    from braintumor.metrics.classification import classification_metrics

    fmt = create_format(f"brain-tumor-mri:{args.data_root / 'brain-tumor-mri'}")
    records = fmt.records()
    train_hashes = {sha1(r.path) for r in records if r.split == "train"}
    test = [r for r in records if r.split == "test"]
    unique = [r for r in test if sha1(r.path) not in train_hashes]
    rows, results = [], {}
    for run in args.runs:
        pred = Predictor.from_run(run)
        row = [run.name]
        for name, recs in (("all Testing", test), ("Testing minus Training copies", unique)):
            probs = np.concatenate(
                [
                    pred.predict_images([fmt.load(r)["image"] for r in recs[i : i + 64]])
                    for i in range(0, len(recs), 64)
                ]
            )
            m = classification_metrics(probs, np.array([r.label for r in recs]), fmt.classes)
            results[f"{run.name}/{name}"] = {"n": len(recs), **m}
            row += [len(recs), m["accuracy"], m["balanced_accuracy"], m["f1_macro"]]
        rows.append(row)
        print(json.dumps({k: (v["n"], round(v["accuracy"], 4)) for k, v in results.items()}))
    write_result("classification_dedup", {"results": results})
    header = [
        "run",
        "n test",
        "accuracy",
        "bal. acc",
        "F1 macro",
        "n unique",
        "accuracy",
        "bal. acc",
        "F1 macro",
    ]
    append_markdown(
        "Classification on de-duplicated Nickparvar Testing",
        markdown_table(header, rows),
        "Left: all Testing files; right: Testing files whose bytes do not also occur in "
        "Training. Same weights, no retraining.",
    )


if __name__ == "__main__":
    main()
