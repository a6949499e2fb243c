"""Data layer: one registry of data set formats, preprocessing, splits, caching."""

from __future__ import annotations

from braintumor.data.base import DatasetFormat, Record
from braintumor.data.registry import FORMATS, create_format, list_formats, parse_spec

__all__ = ["FORMATS", "DatasetFormat", "Record", "create_format", "list_formats", "parse_spec"]
