"""The typer application object and what every command module shares.

:func:`parse_options` is the one parser of data-format options: ``--option`` /
``-o`` of ``inspect``, ``evaluate`` and ``pipeline`` (which also takes the older
spelling ``--data-option``).
"""

from __future__ import annotations

from typing import Any

import typer
import yaml

from braintumor.errors import ConfigError

app = typer.Typer(
    name="braintumor",
    help="Deep learning on brain MRI: classify, segment, evaluate, explain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# The inference backend flag of predict and pipeline (one help text for both).
BACKEND_HELP = (
    "auto (default on CPU: the fastest of bf16 / channels-last / ONNX Runtime "
    "that matches eager fp32 within tolerance, timed on the first batch), "
    "eager (as trained) or onnxruntime."
)


@app.callback()
def _root() -> None:
    """Deep learning on brain MRI: classify, segment, evaluate, explain."""


@app.command()
def version() -> None:
    """Print the braintumor version."""
    from braintumor import __version__

    typer.echo(__version__)


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``["target=labels", "skip_empty=none"]`` -> dict; values parsed as YAML scalars.

    Raises:
        ConfigError: an item without ``key=``, or a value that is not valid YAML
            (``a=[``): one line naming the item and the fix.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"bad --option {item!r}: use key=value, e.g. --option target=labels")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            raise ConfigError(
                f"bad value in --option {item!r}: not valid YAML; quote it or close its "
                "brackets (e.g. --option 'sizes=[1, 2]')"
            ) from None
    return out
