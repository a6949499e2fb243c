"""Validate a model card (``RUN/model.json``) before anything is built from it.

The card is a plain JSON file that people edit by hand. Everything downstream
(the model registry, the predictor, the metrics, the service) trusts its fields, so
a run is loaded only after :func:`check_card` has checked each field's type and that
the fields agree with each other: the number of class names against ``num_classes``,
the task against the registered model, the image size and channels against sane
ranges. Each problem is one line naming the file, the field and the fix.

The module imports nothing from training, and only the model registry (to check the
task), so the run-folder reader and anything else can call it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from braintumor.errors import DataError

__all__ = ["CARD_KEYS", "TASKS", "check_card"]

# What load_run, evaluation and prediction read from a card.
CARD_KEYS = ("name", "task", "in_channels", "num_classes", "classes", "mask_channels")
_PREPROCESSING = ("image_size", "channels", "crop")
TASKS = ("classification", "segmentation")
# Far above any trained run here (<= 512 px); refuses a typo that would allocate GBs.
_MAX_IMAGE_SIZE = 4096
_MAX_CHANNELS = 16


def _missing(card: dict[str, Any]) -> list[str]:
    missing = [k for k in CARD_KEYS if k not in card]
    pre = card.get("preprocessing")
    if not isinstance(pre, dict):
        missing.append("preprocessing")
    else:
        missing += [f"preprocessing.{k}" for k in _PREPROCESSING if k not in pre]
    if not isinstance(card.get("data", {}), dict) or "spec" not in card.get("data", {}):
        missing.append("data.spec")
    return missing


def _int_field(value: Any, field: str, low: int, high: int) -> str | None:
    # bool is an int in Python; a card saying "in_channels": true is still wrong.
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{field} is {value!r}, not an integer"
    if not low <= value <= high:
        return f"{field} is {value}, outside {low}..{high}"
    return None


def _names_field(value: Any, field: str) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        return f"{field} is {value!r}, not a list of names"
    if len(set(value)) != len(value):
        return f"{field} repeats a name ({value})"
    return None


def _problems(card: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    task = card["task"]
    if task not in TASKS:
        return [f"task is {task!r}, not one of {', '.join(TASKS)}"]
    if not isinstance(card["name"], str) or not card["name"]:
        return [f"name is {card['name']!r}, not a model name"]
    pre = card["preprocessing"]
    checks = [
        _int_field(card["in_channels"], "in_channels", 1, _MAX_CHANNELS),
        _int_field(card["num_classes"], "num_classes", 1, 100_000),
        _int_field(pre["image_size"], "preprocessing.image_size", 8, _MAX_IMAGE_SIZE),
        _int_field(pre["channels"], "preprocessing.channels", 1, _MAX_CHANNELS),
        _names_field(card["classes"], "classes"),
        _names_field(card["mask_channels"], "mask_channels"),
    ]
    problems += [c for c in checks if c]
    if not isinstance(pre["crop"], bool):
        problems.append(f"preprocessing.crop is {pre['crop']!r}, not true/false")
    if not isinstance(card.get("kwargs", {}), dict):
        problems.append(f"kwargs is {card['kwargs']!r}, not a mapping")
    threshold = card.get("threshold", 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        problems.append(f"threshold is {threshold!r}, not a number")
    elif not 0.0 <= threshold <= 1.0:
        problems.append(f"threshold is {threshold}, outside 0..1")
    if problems:
        return problems
    neighbours = pre.get("neighbours", 0)
    bad = _int_field(neighbours, "preprocessing.neighbours", 0, _MAX_CHANNELS)
    if bad:
        return [bad]
    # 2.5D runs (data.neighbours) see the image's channels plus 2 x neighbours FLAIR.
    if pre["channels"] + 2 * neighbours != card["in_channels"]:
        extra = f" + 2 x {neighbours} neighbours" if neighbours else ""
        problems.append(
            f"preprocessing.channels ({pre['channels']}{extra}) differs from in_channels "
            f"({card['in_channels']})"
        )
    names = card["classes"] if task == "classification" else card["mask_channels"]
    field = "classes" if task == "classification" else "mask_channels"
    if len(names) != card["num_classes"]:
        problems.append(
            f"{field} names {len(names)} outputs but num_classes is {card['num_classes']}"
        )
    if task == "classification" and card["num_classes"] < 2:
        problems.append("a classifier needs num_classes >= 2")
    return problems + _inference_problems(card) + _registry_problems(card)


def _inference_problems(card: dict[str, Any]) -> list[str]:
    """The optional ``inference`` levers (engine/levers.py) must be well-formed."""
    lev = card.get("inference")
    if lev is None:
        return []
    if not isinstance(lev, dict):
        return ["inference must be an object (tta, min_component_voxels)"]
    problems = []
    if not isinstance(lev.get("tta", False), bool):
        problems.append("inference.tta must be true or false")
    size = lev.get("min_component_voxels", 0)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        problems.append("inference.min_component_voxels must be an integer >= 0")
    if not isinstance(lev.get("keep_largest", False), bool):
        problems.append("inference.keep_largest must be true or false")
    return problems


def _registry_problems(card: dict[str, Any]) -> list[str]:
    """The model must exist and be registered for the card's task."""
    from braintumor.models.registry import list_models, model_entry

    if card["name"] not in list_models():
        return []  # load_run reports an unknown model with the list of valid names
    registered = model_entry(card["name"]).task
    if registered != card["task"]:
        return [f"task is {card['task']!r} but model {card['name']!r} is a {registered} model"]
    return []


def check_card(card: Any, path: Path) -> dict[str, Any]:
    """The card read from ``path`` if it is complete and consistent, else a DataError.

    Args:
        card: the parsed JSON of ``model.json``.
        path: the file, named in the error.
    """
    if not isinstance(card, dict):
        raise DataError(f"{path} is not a model card (a JSON object); retrain the run")
    missing = _missing(card)
    if missing:
        raise DataError(
            f"{path} is not a complete model card: {', '.join(missing)} missing; "
            "retrain the run (or restore model.json)"
        )
    problems = _problems(card)
    if problems:
        raise DataError(
            f"{path} is not a valid model card: {'; '.join(problems)}; restore the "
            "model.json written by training (or retrain the run)"
        )
    return card
