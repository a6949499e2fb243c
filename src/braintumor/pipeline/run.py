"""``braintumor pipeline``: scans in, findings out.

For each input (see :func:`~braintumor.inference.scans.load_input`) the two-stage
pipeline runs on every slice and :mod:`braintumor.pipeline.outputs` writes the mask
files, overlays and a JSON summary into ``out/<input name>/``; ``out/summary.json``
lists all inputs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from braintumor.inference.scans import ScanInput, load_input, unique_name
from braintumor.pipeline.core import SliceResult, TwoStagePipeline
from braintumor.pipeline.outputs import write_image_outputs, write_volume_outputs
from braintumor.pipeline.seg_gate import DEFAULT_GATE


def predict_images_together(
    pipe: TwoStagePipeline, scans: Sequence[ScanInput], show_progress: bool = True
) -> list[list[SliceResult]]:
    """The slices of many 2D inputs through the pipeline in shared batches (one
    image per input would run the networks at batch 1); one result list per input."""
    cls_scale, seg_scale = pipe.classifier.intensity, pipe.segmenter.intensity
    cls_images = [im for s in scans for im in s.slices(cls_scale)]
    seg_images = [im for s in scans for im in s.slices(seg_scale)]
    results = pipe.predict(cls_images, seg_images, show_progress=show_progress)
    out, i = [], 0
    for s in scans:
        out.append(results[i : i + s.n_slices])
        i += s.n_slices
    return out


def process_input(
    pipe: TwoStagePipeline,
    scan: ScanInput,
    out: Path,
    show_progress: bool = True,
    results: list[SliceResult] | None = None,
) -> dict[str, Any]:
    """Run the pipeline on one loaded input (unless its ``results`` are given) and
    write its outputs into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    if results is None:
        results = pipe.predict_scan(scan, show_progress=show_progress)
    if scan.is_volume:
        found = write_volume_outputs(scan, results, pipe.classes, pipe.mask_channels, out)
    else:
        found = write_image_outputs(scan, results[0], pipe.classes, pipe.mask_channels, out)
    summary = {
        "input": str(scan.path),
        "name": scan.name,
        "kind": scan.kind,
        "shape": list(scan.data.shape),
        "channels": scan.channel_names,
        "threshold": pipe.threshold,
        "classes": pipe.classes,
        "mask_channels": pipe.mask_channels,
        **found,
    }
    (out / f"{scan.name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run_pipeline(
    classifier_run: str | Path | None,
    segmenter_run: str | Path,
    inputs: Sequence[str | Path],
    out: str | Path,
    threshold: float | None = None,
    *,
    device: str | None = None,
    show_progress: bool = True,
    backend: str | None = None,
) -> list[dict[str, Any]]:
    """Gate ``segmenter_run`` by ``classifier_run`` on every input; write findings to ``out``.

    Returns:
        One summary dict per input (as in its JSON file).
    """
    pipe = TwoStagePipeline.from_runs(classifier_run, segmenter_run, threshold, device, backend)
    out = Path(out).expanduser()
    scans = [load_input(p) for p in inputs]  # read everything first: bad paths fail fast
    used: set[str] = set()
    for scan in scans:
        scan.name = unique_name(scan, used)
    images = [s for s in scans if not s.is_volume]
    batched = predict_images_together(pipe, images, show_progress)
    together = dict(zip(map(id, images), batched, strict=True))
    summaries = [
        process_input(pipe, s, out / s.name, show_progress, together.get(id(s))) for s in scans
    ]
    index = {
        "classifier": str(classifier_run or DEFAULT_GATE),
        "segmenter": str(segmenter_run),
        "threshold": pipe.threshold,
        "inputs": [
            {
                "input": s["input"],
                "class": s["class"],
                "tumor_probability": s["tumor_probability"],
                "json": str(out / s["name"] / f"{s['name']}.json"),
            }
            for s in summaries
        ],
    }
    (out / "summary.json").write_text(json.dumps(index, indent=2) + "\n")
    return summaries
