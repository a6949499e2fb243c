"""braintumor: deep learning on brain MRI."""

from __future__ import annotations

__version__ = "0.1.0"
