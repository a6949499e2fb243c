"""The ``braintumor`` command line (typer).

Each command group lives in its own module and registers on :data:`app`.
User errors (:class:`~braintumor.errors.BrainTumorError`) print one line and exit 2.
"""

from __future__ import annotations

import sys

from braintumor.cli.app import app
from braintumor.errors import BrainTumorError

# isort: split
# Importing the command modules registers their commands on ``app``.
from braintumor.cli import data_cmds, pipeline_cmds, run_cmds, serve_cmds  # noqa: F401


def one_line(text: str) -> str:
    """``text`` on a single line (messages quoting another library may hold newlines)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def os_error_message(exc: OSError) -> str:
    """A file-system error as one line naming the path: full disk, no permission, ..."""
    what = exc.strerror or type(exc).__name__
    if exc.filename is None:
        return one_line(str(exc)) or what
    where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 else "")
    return f"{where}: {what}; check the path, its permissions and the free disk space"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    try:
        app(args=argv, standalone_mode=False)
    except BrainTumorError as exc:
        # "interrupted: ..." for Ctrl+C during training, "error: ..." for everything else.
        print(f"{getattr(exc, 'prefix', 'error')}: {one_line(str(exc))}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except OSError as exc:
        # The environment, not the code: a path through a file, a read-only folder, a
        # full disk. The user can fix it; a traceback would not help them.
        print(f"error: {os_error_message(exc)}", file=sys.stderr)
        sys.exit(2)
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
