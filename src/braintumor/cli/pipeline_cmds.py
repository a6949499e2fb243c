"""Commands ``pipeline``, ``explain``, ``compare`` and ``demo``.

Heavy imports happen inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from braintumor.atomic import new_folder
from braintumor.cli.app import BACKEND_HELP, app, parse_options
from braintumor.errors import ConfigError


def _describe(summary: dict[str, Any]) -> str:
    if summary["kind"] == "image":
        area = summary["tumor_area_px"]["any"]
        mm2 = summary["tumor_area_mm2"]
        size = f"{area} px" + (f" = {mm2['any']:.1f} mm2" if mm2 else "")
    else:
        ml = summary["tumor_volume_ml"]
        size = f"{summary['tumor_voxels']['any']} voxels" + (f" = {ml['any']:.2f} mL" if ml else "")
        size += f" on {len(summary['slices_with_tumor'])} slice(s)"
    return (
        f"{summary['name']}: {summary['class']} (tumor p={summary['tumor_probability']:.2f}), "
        f"tumor {size}"
    )


@app.command()
def pipeline(
    inputs: list[Path] = typer.Argument(
        None, help="Images, NIfTI volumes, DICOM series or BraTS case folders.", show_default=False
    ),
    classifier: Path | None = typer.Option(
        None,
        "--classifier",
        help="Classification run (the gate), or 'segmenter-area' (the default) / "
        "'segmenter': detection read off the segmenter (predicted area fraction of its "
        "post-processed mask / max probability).",
    ),
    segmenter: Path = typer.Option(..., "--segmenter", help="Segmentation run."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        help="Minimum tumor probability (1 - P(no tumor)) for the segmenter's mask to be "
        "kept. Default: 0.5 for a classifier; for 'segmenter-area' the area chosen on the "
        "segmenter's val split at training (model card), else any predicted pixel.",
    ),
    data: str | None = typer.Option(None, "--data", help="With --evaluate: FORMAT[:PATH]."),
    data_option: list[str] = typer.Option(
        [], "--option", "--data-option", "-o", help="Format option key=value (repeatable)."
    ),
    split: str = typer.Option("test", "--split", help="train, val or test (with --evaluate)."),
    evaluate: bool = typer.Option(
        False,
        "--evaluate",
        help="Score gated vs un-gated segmentation on --data and write pipeline_metrics.json.",
    ),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: auto)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    backend: str | None = typer.Option(
        None,
        "--backend",
        help=BACKEND_HELP,
    ),
) -> None:
    """Two-stage pipeline: the classifier gates the segmenter (scans in, findings out)."""
    from braintumor.engine.checks import check_device

    device = check_device(device)
    if evaluate and not data:
        raise ConfigError("--evaluate needs --data FORMAT[:PATH] (the data set to score on)")
    if data and not evaluate:
        raise ConfigError("--data is only used with --evaluate; add --evaluate")
    if not inputs and not evaluate:
        raise ConfigError("give INPUT files/folders, or --evaluate --data FORMAT[:PATH]")
    if split not in ("train", "val", "test"):
        raise ConfigError(f"unknown split {split!r}; use train, val or test")
    if evaluate:
        from braintumor.pipeline.evaluate import METRICS_FILE, evaluate_pipeline, format_table

        res = evaluate_pipeline(
            classifier,
            segmenter,
            str(data),
            out,
            split,
            threshold,
            options=parse_options(data_option) or None,
            device=device,
            show_progress=progress,
        )
        typer.echo(format_table(res))
        typer.echo(f"written: {out / METRICS_FILE}")
    if inputs:
        from braintumor.pipeline.run import run_pipeline

        with new_folder(out):  # a failed run leaves no empty --out behind
            summaries = run_pipeline(
                classifier,
                segmenter,
                inputs,
                out,
                threshold,
                device=device,
                show_progress=progress,
                backend=backend,
            )
        for summary in summaries:
            typer.echo(_describe(summary))
        typer.echo(f"findings (masks, overlays, JSON) in {out}")


@app.command()
def explain(
    run: Path = typer.Argument(..., help="Run folder (classifier, vit or attention_unet)."),
    inputs: list[Path] = typer.Argument(..., help="Images (or volumes: see --slice)."),
    out: Path = typer.Option(..., "--out", help="Output folder for the heat-map PNGs."),
    method: str = typer.Option(
        "auto", "--method", help="auto, gradcam, rollout (vit) or gates (attention_unet)."
    ),
    target: str | None = typer.Option(
        None, "--target", help="Class to explain (default: the predicted one)."
    ),
    slice_index: int | None = typer.Option(
        None, "--slice", help="Slice of a volume input (default: the middle one)."
    ),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: auto)."),
    layer: str | None = typer.Option(
        None,
        "--layer",
        help="Grad-CAM layer by module name, e.g. features.4 (default: the last conv block; "
        "an earlier one gives a finer map).",
    ),
) -> None:
    """Heat maps of where a model looks, overlaid on each input at its own size."""
    from braintumor.engine.checks import check_device

    device = check_device(device)
    from braintumor.explain import explain_inputs

    for p in explain_inputs(
        run,
        inputs,
        out,
        method=method,
        target=target,
        slice_index=slice_index,
        device=device,
        layer=layer,
    ):
        typer.echo(str(p))
    typer.echo(f"details (class, probability, method) in {out / 'explanations.json'}")


@app.command()
def compare(
    runs: list[Path] = typer.Argument(..., help="Run folders to compare."),
    out: Path = typer.Option(..., "--out", help="Report folder (report.html, report.md)."),
    pipeline_dir: Path | None = typer.Option(
        None, "--pipeline", help="Folder with pipeline_metrics.json to include."
    ),
    cases: int = typer.Option(2, "--cases", help="Best/worst cases per run (0: none)."),
    throughput: bool = typer.Option(
        True, "--throughput/--no-throughput", help="Measure images/s of each model on this CPU."
    ),
) -> None:
    """A self-contained HTML (and Markdown) report comparing trained runs."""
    from braintumor.reports.compare import compare_runs

    html, md = compare_runs(
        list(runs),
        out,
        pipeline=pipeline_dir,
        cases=cases,
        throughput_seconds=1.0 if throughput else 0.0,
    )
    typer.echo(f"report: {html}\nmarkdown: {md}")


@app.command()
def demo(
    out: Path = typer.Option(Path("braintumor-demo"), "--out", help="Output folder."),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="Tiny sizes, 1 epoch: checks that everything runs (numbers meaningless).",
    ),
) -> None:
    """Train, pipeline, explain and report on built-in synthetic data (offline, minutes)."""
    from braintumor.demo import run_demo

    s = run_demo(out, quick=quick)

    def num(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    typer.echo(
        f"\ndone in {s['seconds']:.0f} s\n"
        f"classifier: accuracy {num(s['classifier_accuracy'])}, balanced accuracy "
        f"{num(s['classifier_balanced_accuracy'])}  ({s['classifier']})\n"
        f"segmenter: Dice {num(s['segmenter_dice'])}, per patient "
        f"{num(s['segmenter_dice_per_patient'])}  ({s['segmenter']})\n"
        f"pipeline metrics: {s['pipeline']}\n"
        f"pipeline findings (masks, overlays, JSON): {s['findings']}\n"
        f"explanations: {Path(s['explain'][0]).parent if s['explain'] else 'none'}\n"
        f"report: {s['report_html']}  (open it in a browser)\n"
        f"report (markdown): {s['report_md']}"
    )
