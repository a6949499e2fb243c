"""User-facing errors.

Anything the user can fix (bad path, corrupt file, unknown name, bad config key)
raises :class:`BrainTumorError`. The CLI prints its message on one line and exits
with code 2, without a traceback. Messages name the file and say how to fix it.
"""

from __future__ import annotations


class BrainTumorError(Exception):
    """An error caused by user input; the message is shown as-is."""

    exit_code = 2


class DataError(BrainTumorError):
    """Missing, empty, corrupt or inconsistent data."""


class ConfigError(BrainTumorError):
    """Bad configuration key or value."""


class UnknownNameError(BrainTumorError, KeyError):
    """A name (model, format, loss, ...) that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
