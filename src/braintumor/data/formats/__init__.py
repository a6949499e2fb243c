"""Built-in data set formats; importing this module registers them all."""

from __future__ import annotations
