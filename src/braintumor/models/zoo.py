"""Imports every model module so that its builders register."""

from __future__ import annotations
