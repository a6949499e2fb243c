"""Data commands: ``datasets``, ``inspect`` and ``download``.

``inspect FORMAT[:PATH]`` prints a summary (tables by default, one JSON object on
stdout with ``--json``; progress always goes to stderr). A preview grid PNG is
written only when ``--preview PNG`` is given.

Imports of the data package happen inside the commands so that ``--help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from braintumor.cli.app import app, parse_options

_err = Console(stderr=True)


@app.command()
def datasets() -> None:
    """List the data set formats (use them as FORMAT:PATH) and the downloadable sets."""
    from braintumor.data import list_formats
    from braintumor.data.download import DOWNLOADS

    table = Table("format", "description", title="Data set formats (FORMAT:PATH)")
    for name, description in list_formats().items():
        table.add_row(name, description)
    Console().print(table)
    dl = Table("name", "format", title="Downloadable (braintumor download NAME --to DIR)")
    dl.add_column("source", overflow="fold")
    for name in DOWNLOADS.names():
        ds = DOWNLOADS.get(name)
        dl.add_row(name, ds.format, ds.url)
    Console().print(dl)


PREVIEW_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")  # what matplotlib writes


@app.command()
def inspect(
    spec: str = typer.Argument(..., help="FORMAT[:PATH], e.g. brain-tumor-mri:/data/btm"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    preview: Path | None = typer.Option(
        None, "--preview", help="Also write a PNG grid of samples (class titles, masks)."
    ),
    option: list[str] | None = typer.Option(
        None, "--option", "--set-option", "-o", help="Format option key=value (repeatable)."
    ),
    no_near: bool = typer.Option(False, "--no-near", help="Skip the near-duplicate search."),
    seed: int = typer.Option(
        42, min=0, max=2**32 - 1, help="Seed of the patient-level split (sets without one)."
    ),
) -> None:
    """Count samples per split and class, check sizes and masks, find duplicates.

    Tables by default; --json prints one JSON object on stdout (progress goes to
    stderr). A preview PNG is written only when --preview PATH is given.
    """
    from braintumor.data import create_format
    from braintumor.data.audit import inspect_dataset, save_preview_grid
    from braintumor.errors import ConfigError

    # Checked before the scan, which can take minutes on a large set.
    if preview is not None and preview.suffix.lower() not in PREVIEW_SUFFIXES:
        raise ConfigError(
            f"--preview {preview}: the preview is an image; use a file name ending in "
            f"{', '.join(PREVIEW_SUFFIXES)} (e.g. grid.png)"
        )
    if preview is not None and preview.is_dir():
        raise ConfigError(f"--preview {preview} is a folder; give a file name such as grid.png")
    fmt = create_format(spec, **parse_options(option))
    summary = inspect_dataset(fmt, seed=seed, near_duplicates=not no_near, progress=True)
    if preview is not None:
        written = save_preview_grid(fmt, fmt.records(), preview)
        summary["preview"] = str(written)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))  # options may hold dates etc.
    else:
        print_summary(summary, Console())


def print_summary(s: dict[str, Any], console: Console) -> None:
    """The human-readable report of :func:`~braintumor.data.audit.inspect_dataset`."""
    where = f"{s['format']}:{s['root']}" if s["root"] else s["format"]
    console.print(
        f"[bold]{where}[/]  {s['n_samples']} samples, {s['n_patients']} patients, "
        f"splits: {s['split_source']}  ({s['seconds']} s)"
    )
    classes = list(s["classes"])
    counts = Table("split", *classes, "total", "patients", title="Samples per split and class")
    for split, per_class in s["per_split_class"].items():
        counts.add_row(
            split,
            *(str(per_class.get(c, 0)) for c in classes),
            str(s["splits"][split]),
            str(s["patients_per_split"][split]),
        )
    counts.add_row("all", *(str(s["classes"][c]) for c in classes), str(s["n_samples"]),
                   str(s["n_patients"]), style="bold")  # fmt: skip
    console.print(counts)

    sizes = s["image_sizes"]
    images = Table("property", "value", title="Images", show_header=False)
    common = ", ".join(f"{hw} ({n})" for hw, n in sizes["most_common"])
    images.add_row("sizes (H x W)", f"{common}; {sizes['n_distinct']} distinct, "
                   f"min {sizes['min']}, max {sizes['max']}")  # fmt: skip
    images.add_row("modes", ", ".join(f"{m} ({n})" for m, n in s["modes"].items()) or "-")
    images.add_row("file types", ", ".join(f"{t} ({n})" for t, n in s["file_types"].items()))
    images.add_row("channels", str(s["channels"]))
    images.add_row("mask channels", ", ".join(s["mask_channels"]) or "none")
    if s["tumor_fraction"] is not None:
        images.add_row(f"with tumor (from {s['tumor_source']})",
                       f"{s['n_with_tumor']} ({100 * s['tumor_fraction']:.1f}%)")  # fmt: skip
    console.print(images)

    audit = Table("check", *s["splits"], "total", title="Audit")
    _audit_row(audit, "exact copies within split", s["duplicates_within"], s)
    _audit_row(audit, "exact copies of earlier splits", s["duplicates_across_splits"], s)
    if "near_duplicates_within" in s:
        _audit_row(audit, "near copies within split", s["near_duplicates_within"], s)
        _audit_row(audit, "near copies of earlier splits", s["near_duplicates_across_splits"], s)
    console.print(audit)
    root = f"{s['root']}/" if s["root"] else "\0"

    def short(path: str) -> str:  # paths relative to the data root, for readability
        return path.removeprefix(root)

    for e in s["duplicate_examples"]["across"][:3]:
        console.print(
            f"  same content: {e['split']} {short(e['file'])} == "
            f"{e['earlier_split']} {short(e['earlier_file'])}",
            highlight=False,
        )
    for e in s.get("near_duplicate_examples", [])[:3]:
        console.print(
            f"  near (pHash {e['distance']} bits): {e['a_split']} {short(e['a'])} ~ "
            f"{e['b_split']} {short(e['b'])}",
            highlight=False,
        )
    for w in s["warnings"]:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    if not s["warnings"]:
        console.print("[green]no problems found[/]")
    if "preview" in s:
        console.print(f"preview: {s['preview']}")


def _audit_row(table: Table, label: str, counts: dict[str, int], s: dict[str, Any]) -> None:
    table.add_row(label, *(str(counts.get(x, "-")) for x in s["splits"]), str(counts["total"]))


@app.command()
def download(
    name: str = typer.Argument(..., help="Data set name (see `braintumor datasets`)."),
    to: Path = typer.Option(..., "--to", help="Target folder (absent or empty)."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty target folder."),
) -> None:
    """Download a public data set (Kaggle API) into the layout its format reads."""
    from braintumor.data.download import download as fetch

    result = fetch(name, to, force=force)
    for w in result.warnings:
        _err.print(f"[yellow]warning:[/] {w}", highlight=False)
    typer.echo(f"downloaded {name} to {result.path}")
    typer.echo(f"use it as: {result.spec}")
