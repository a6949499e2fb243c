"""The typer application object shared by all command modules."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="braintumor",
    help="Deep learning on brain MRI: classify, segment, evaluate, explain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Deep learning on brain MRI: classify, segment, evaluate, explain."""


@app.command()
def version() -> None:
    """Print the braintumor version."""
    from braintumor import __version__

    typer.echo(__version__)
