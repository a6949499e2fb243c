"""The ``braintumor`` command line (typer).

Each command group lives in its own module and registers on :data:`app`.
User errors (:class:`~braintumor.errors.BrainTumorError`) print one line and exit 2.
"""

from __future__ import annotations

import sys

from braintumor.cli.app import app
from braintumor.errors import BrainTumorError

# Importing the command modules registers their commands on ``app``.
from braintumor.cli import data_cmds, run_cmds, pipeline_cmds, serve_cmds  # noqa: E402,F401,I001


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    try:
        app(args=argv, standalone_mode=False)
    except BrainTumorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:
        # Usage errors from (typer's vendored) click: show them the click way.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            sys.exit(1)
        raise
