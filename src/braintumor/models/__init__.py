"""Model zoo: classifiers and segmenters, all built through one registry."""

from __future__ import annotations

from braintumor.models.registry import count_params, create_model, list_models, register_model

__all__ = ["count_params", "create_model", "list_models", "register_model"]
