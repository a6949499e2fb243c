"""The one way to build a model: ``create_model(name, in_channels=, num_classes=, **kw)``.

Builders register with ``@register_model(task)``; the CLI, configs, engine and
tests only reach models through this registry. Every model returns logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from braintumor.errors import ConfigError
from braintumor.registry import Registry


@dataclass(frozen=True)
class ModelEntry:
    name: str
    task: str  # "classification" | "segmentation"
    builder: Callable[..., nn.Module]
    description: str


MODELS: Registry[ModelEntry] = Registry("model")


def register_model(
    task: str, name: str | None = None
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator filing a builder ``fn(in_channels, num_classes, **kw) -> nn.Module``."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        doc = (fn.__doc__ or "").strip().splitlines()
        entry = ModelEntry(key, task, fn, doc[0] if doc else "")
        MODELS.register(key)(entry)
        return fn

    return deco


def _ensure_loaded() -> None:
    import braintumor.models.zoo  # noqa: F401  (registers every built-in model)


def create_model(name: str, in_channels: int = 1, num_classes: int = 2, **kwargs: Any) -> nn.Module:
    """Build a registered model. Unknown names raise an error listing valid ones."""
    _ensure_loaded()
    entry = MODELS.get(name)
    try:
        return entry.builder(in_channels=in_channels, num_classes=num_classes, **kwargs)
    except TypeError as exc:
        raise ConfigError(
            f"model {name!r}: {exc}; fix model.kwargs (--set model.kwargs.KEY=VALUE)"
        ) from None


def model_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    return MODELS.get(name)


def list_models(task: str | None = None) -> list[str]:
    _ensure_loaded()
    return [n for n in MODELS.names() if task is None or MODELS.get(n).task == task]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
