"""Two-stage pipeline benchmark on LGG (not a test): gated vs un-gated segmentation.

Uses a trained LGG classifier (tumor / no tumor) and a trained LGG segmenter that
share one patient-level split (same data, seed and fractions), and scores both
variants on the test patients: Dice/IoU/mIoU per image and per patient, false-positive
pixels and slices on healthy slices, tumor slices wrongly emptied by the gate.

Example (after ``classification.py --suite lgg`` and ``segmentation.py --suite lgg``)::

    python benchmarks/pipeline.py --classifier runs/bench_cls/lgg_custom_cnn \
        --segmenter runs/bench_seg/lgg_unet_dice_bce
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import DEFAULT_DATA, ROOT, append_markdown, markdown_table, write_result


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--classifier", type=Path, default=ROOT / "runs" / "bench_cls" / "lgg_custom_cnn"
    )
    ap.add_argument(
        "--segmenter", type=Path, default=ROOT / "runs" / "bench_seg" / "lgg_unet_dice_bce"
    )
    ap.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_pipeline")
    args = ap.parse_args()

    from braintumor.pipeline.evaluate import comparison_rows, evaluate_pipeline

    spec = f"lgg:{args.data_root / 'lgg-mri-segmentation' / 'kaggle_3m'}"
    # Both runs must have been split identically, so that the classifier never saw a test patient.
    cls_split = json.loads((args.classifier / "splits.json").read_text())
    seg_split = json.loads((args.segmenter / "splits.json").read_text())
    same = cls_split.get("test") == seg_split.get("test")
    result = evaluate_pipeline(
        args.classifier, args.segmenter, spec, args.out, "test", args.threshold, show_progress=False
    )
    result["same_test_split"] = same
    write_result("pipeline_lgg", {"results": result})
    rows = [list(r) for r in comparison_rows(result)]
    notes = (
        f"LGG test patients: {result['n_patients']} ({result['n_images']} slices, "
        f"{result['n_tumor_slices']} with tumor). Gate threshold {args.threshold}. "
        f"Classifier and segmenter test splits identical: {same}; classifier saw test "
        f"slices: {result['classifier_saw_test_slices']}."
    )
    append_markdown(
        "Two-stage pipeline on LGG (gated vs un-gated)",
        markdown_table(["metric", "un-gated", "gated"], rows),
        notes,
    )
    print(json.dumps({k: result[k] for k in ("n_images", "n_patients", "same_test_split")}))


if __name__ == "__main__":
    main()
