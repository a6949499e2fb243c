"""Figures and reports: learning curves, confusion matrices, overlays, comparisons.

Submodules are imported on demand (``from braintumor.figures.plots import ...``) so
that importing the package never pulls in matplotlib.
"""

from __future__ import annotations
