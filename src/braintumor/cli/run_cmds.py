"""Run commands: ``models``, ``train``, ``evaluate`` and ``predict``.

Configuration precedence for ``train``: the YAML file (``--config``), then every
``--set key=value``, then the explicit flags (``--epochs``, ``--lr``, ...).
Heavy imports (torch, Lightning) happen inside the commands so that ``--help``
stays fast.

The tables they print are built in :mod:`braintumor.cli.tables` (re-exported here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from braintumor.atomic import new_folder
from braintumor.cli.app import BACKEND_HELP, app, parse_options
from braintumor.cli.tables import model_rows, print_cv_summary, print_metrics
from braintumor.errors import ConfigError

__all__ = [
    "build_train_config",
    "evaluate",
    "model_rows",
    "models",
    "predict",
    "print_cv_summary",
    "print_metrics",
    "train",
]

_out = Console()


def build_train_config(config: Path | None, overrides: list[str], flags: dict[str, Any]) -> Any:
    """Config file, then ``--set`` overrides, then the explicit flags (not None)."""
    from braintumor.config import load_config

    cfg = load_config(config, overrides)
    for key, value in flags.items():
        if value is None:
            continue
        obj = cfg
        *parents, last = key.split(".")
        for part in parents:
            obj = getattr(obj, part)
        setattr(obj, last, value)
    return cfg


@app.command()
def models(
    task: str | None = typer.Option(None, "--task", help="classification or segmentation."),
) -> None:
    """List the registered models with their task and size."""
    table = Table("name", "task", "params", "description", title="Models (--model NAME)")
    for row in model_rows(task):
        table.add_row(row["name"], row["task"], row["params_text"], row["description"])
    _out.print(table)


@app.command()
def train(
    task: str | None = typer.Option(None, "--task", help="classification or segmentation."),
    model: str | None = typer.Option(None, "--model", help="Model name (braintumor models)."),
    loss: str | None = typer.Option(None, "--loss", help="Loss name (default: per task)."),
    data: str | None = typer.Option(
        None, "--data", help="FORMAT[:PATH], e.g. lgg:/data/kaggle_3m."
    ),
    out: Path | None = typer.Option(None, "--out", help="Run folder to write."),
    config: Path | None = typer.Option(None, "--config", help="YAML config file."),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Config override key=value (repeatable)."
    ),
    epochs: int | None = typer.Option(None, "--epochs"),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    lr: float | None = typer.Option(None, "--lr"),
    image_size: int | None = typer.Option(None, "--image-size"),
    folds: int | None = typer.Option(None, "--folds", help="Patient-level K-fold CV (K >= 2)."),
    pretrained: str | None = typer.Option(None, "--pretrained", help="Weights file or 'imagenet'."),
    accelerator: str | None = typer.Option(None, "--accelerator", help="cpu, gpu or auto."),
    devices: str | None = typer.Option(None, "--devices", help="auto, 1, 4, 0,1 ..."),
    precision: str | None = typer.Option(
        None, "--precision", help="auto, 32-true, bf16-mixed, 16-mixed."
    ),
    seed: int | None = typer.Option(None, "--seed"),
    force: bool = typer.Option(
        False, "--force", help="Replace a run folder holding a model (swapped in when complete)."
    ),
    resume: Path | None = typer.Option(
        None, "--resume", help="Continue the killed or interrupted run of this run folder."
    ),
) -> None:
    """Train a model; writes the run folder and prints the test metrics.

    The run is built beside --out and moved in only when complete; it saves a
    checkpoint every epoch, so a killed run continues with --resume RUN.
    """
    flags = {
        "task": task,
        "model.name": model,
        "loss": loss,
        "data.spec": data,
        "trainer.epochs": epochs,
        "data.batch_size": batch_size,
        "optim.lr": lr,
        "data.image_size": image_size,
        "folds": folds,
        "model.pretrained": pretrained,
        "trainer.accelerator": accelerator,
        "trainer.devices": devices,
        "trainer.precision": precision,
        "seed": seed,
    }
    from braintumor.errors import ConfigError

    if resume is not None:
        given = [k for k, v in flags.items() if v is not None]
        given += ["--config"] * (config is not None) + ["--set"] * bool(set_) + ["--force"] * force
        given += ["--out"] * (out is not None and out != resume)
        if given:
            raise ConfigError(
                f"--resume continues {resume} with the settings it was started with; "
                f"drop {', '.join(given)}"
            )
        from braintumor.engine.train import resume as resume_training

        _show_run(resume_training(resume))
        return
    if out is None:
        raise ConfigError("train needs --out RUN (the run folder to write), or --resume RUN")
    cfg = build_train_config(config, set_ or [], flags)
    # Lightning is imported only now: a typo in the config is reported in a second.
    from braintumor.engine.train import train as run_training

    _show_run(run_training(cfg, out, force=force))


def _show_run(run: Path) -> None:
    """Where the run is, and its test metrics (or the cross-validation summary)."""
    from braintumor.inference.runs import CARD_FILE, CV_FILE, METRICS_FILE

    _out.print(f"run folder: {run}")
    if (run / CV_FILE).is_file():
        print_cv_summary(_out, json.loads((run / CV_FILE).read_text()))
    elif (run / METRICS_FILE).is_file():
        task = json.loads((run / CARD_FILE).read_text())["task"]
        print_metrics(_out, json.loads((run / METRICS_FILE).read_text()), task, "test")


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="Run folder (the --out of train)."),
    data: str | None = typer.Option(
        None, "--data", help="Evaluate on another data set FORMAT:PATH."
    ),
    split: str = typer.Option("test", "--split", help="train, val or test."),
    option: list[str] | None = typer.Option(
        None, "--option", "-o", help="Format option key=value (repeatable)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Evaluate a trained run on its saved split or on another data set."""
    from braintumor.engine.evaluate import evaluate_run

    if option and data is None:  # the run's own data is read with its saved options
        raise ConfigError(
            "--option applies to the data set given with --data; without --data the run "
            "is evaluated on its own data with the options it was trained on"
        )
    metrics = evaluate_run(run, data_spec=data, split=split, options=parse_options(option))
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
        return
    from braintumor.inference.runs import CARD_FILE

    task = json.loads((run / CARD_FILE).read_text())["task"]
    print_metrics(_out, metrics, task, f"{metrics.get('split', split)} of {metrics['data']}")
    if metrics.get("note"):
        _out.print(f"note: {metrics['note']}")
    _out.print(f"written: {metrics.get('written')}")


@app.command()
def predict(
    run: Path = typer.Argument(..., help="Run folder (the --out of train)."),
    inputs: list[Path] = typer.Argument(
        ...,
        help="Images (PNG/JPEG/TIFF/DICOM), NIfTI volumes, DICOM series or BraTS case folders.",
    ),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default RUN/predictions)."),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
    backend: str | None = typer.Option(
        None,
        "--backend",
        help=BACKEND_HELP,
    ),
) -> None:
    """Classify images, or segment images/volumes (masks + overlay PNGs), scaled as the run's
    card says (the same reader and preprocessing as pipeline, explain and serve)."""
    from braintumor.errors import DataError
    from braintumor.inference.predict_files import predict_inputs
    from braintumor.inference.predictor import Predictor

    if out is not None and out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; choose a folder for the predictions")
    predictor = Predictor.from_run(run, backend=backend)
    if predictor.is_classification:
        results = predict_inputs(predictor, inputs, None)
        if out is not None:  # classification writes a file only when asked to
            from braintumor.atomic import write_text_atomic

            out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(out / "predictions.json", json.dumps(results, indent=2) + "\n")
    else:
        with new_folder(out or (run / "predictions")):  # a failure leaves no empty --out
            results = predict_inputs(predictor, inputs, out or (run / "predictions"))
    if as_json:
        typer.echo(json.dumps(results, indent=2))
        return
    if predictor.is_classification:
        table = Table("input", "prediction", *predictor.names, title="Class probabilities")
        for r in results:
            table.add_row(
                r["input"],
                r["prediction"],
                *(f"{r['probabilities'][c]:.4f}" for c in predictor.names),
            )
    else:
        table = Table(
            "input", "mask", "overlay", *(f"{c} px" for c in predictor.names), title="Segmentation"
        )
        for r in results:
            table.add_row(
                r["input"], r["mask"], r["overlay"], *(str(r["pixels"][c]) for c in predictor.names)
            )
    _out.print(table)
