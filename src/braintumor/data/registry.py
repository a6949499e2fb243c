"""Registry of data set formats, selected on the CLI as ``FORMAT:PATH``."""

from __future__ import annotations

from typing import Any

from braintumor.data.base import DatasetFormat
from braintumor.registry import Registry

FORMATS: Registry[type[DatasetFormat]] = Registry("data format")


def _ensure_loaded() -> None:
    # Importing the package registers every built-in format.
    import braintumor.data.formats  # noqa: F401


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``FORMAT:PATH`` (``PATH`` may itself contain ':'); ``FORMAT`` alone is allowed."""
    name, sep, path = spec.partition(":")
    return name.strip(), (path if sep and path else None)


def create_format(spec: str, **options: Any) -> DatasetFormat:
    """Build the format named in ``spec`` (e.g. ``"lgg:/data/kaggle_3m"``)."""
    _ensure_loaded()
    name, path = parse_spec(spec)
    cls = FORMATS.get(name)
    return cls(path, **options)


def intensity_scale(spec: str) -> str:
    """``"unit"`` or ``"zscore"``: the intensity scale of the format named in ``spec``."""
    _ensure_loaded()
    name, _ = parse_spec(spec)
    return FORMATS.get(name).intensity if name in FORMATS else "unit"


def list_formats() -> dict[str, str]:
    """Format name -> one-line description."""
    _ensure_loaded()
    return {n: FORMATS.get(n).description for n in FORMATS.names()}
