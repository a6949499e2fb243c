"""Commands (filled in by their owner)."""

from __future__ import annotations

from braintumor.cli.app import app  # noqa: F401
