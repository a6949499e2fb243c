"""The model card's fields that come from training: :func:`make_card` builds a run's
``model.json`` from its config (preprocessing, normalisation, runtime);
:func:`card_intensity` reads the intensity scale back, also from older cards.

:mod:`braintumor.inference.card` checks a card when a run is loaded.
"""

from __future__ import annotations

from typing import Any

from braintumor import __version__
from braintumor.config import Config
from braintumor.data.registry import intensity_scale


def _normalisation(spec: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    from braintumor.data.registry import intensity_scale

    scale = intensity_scale(spec)
    how = (
        "z-score of each channel over the brain (non-zero voxels) of each volume"
        if scale == "zscore"
        else "[0, 1]: 8-bit images / 255; 16-bit, float and DICOM images by robust min/max"
    )
    out: dict[str, Any] = {"intensity": scale, "description": how}
    if (options or {}).get("normalize") == "volume":
        out["per_volume"] = True
        out["description"] = (
            how + "; then each channel divided by its 99th percentile over the brain "
            "(non-zero pixels) of the patient's volume and clipped to [0, 1]; a single "
            "slice without its volume is scaled over that slice"
        )
    return out


def card_intensity(card: dict[str, Any]) -> str:
    """The intensity scale a run was trained on (older cards: inferred from the data spec)."""
    norm = card.get("normalisation") or {}
    if norm.get("intensity") in ("unit", "zscore"):
        return str(norm["intensity"])

    return intensity_scale(str(card.get("data", {}).get("spec", "")))


def _preprocessing(cfg: Config, in_channels: int, crop: bool) -> dict[str, Any]:
    pre: dict[str, Any] = {"image_size": cfg.data.image_size, "channels": in_channels, "crop": crop}
    if cfg.data.neighbours:  # 2.5D: the image's channels plus 2 x neighbours FLAIR channels
        pre.update(channels=in_channels - 2 * cfg.data.neighbours, neighbours=cfg.data.neighbours)
    return pre


def make_card(
    cfg: Config,
    *,
    in_channels: int,
    num_classes: int,
    classes: list[str],
    mask_channels: list[str],
    crop: bool,
    metrics: dict[str, Any] | None = None,
    params: int | None = None,
    inference: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The model card (``model.json``) of a run.

    ``inference``: the levers chosen on validation (``engine/levers.py``: flip TTA,
    smallest 3-D component kept), which evaluation and prediction apply; absent: none.
    """

    return {
        "name": cfg.model.name,
        "task": cfg.task,
        "kwargs": dict(cfg.model.kwargs),
        "in_channels": in_channels,
        "num_classes": num_classes,
        "classes": list(classes),
        "mask_channels": list(mask_channels),
        "preprocessing": _preprocessing(cfg, in_channels, crop),
        "normalisation": _normalisation(cfg.data.spec, cfg.data.options),
        "data": {"spec": cfg.data.spec, "options": dict(cfg.data.options)},
        "threshold": cfg.threshold,
        "runtime": runtime_settings(cfg),
        "params": params,
        "metrics": metrics or {},
        **({"inference": dict(inference)} if inference else {}),
        "braintumor_version": __version__,
        "created": None,
    }


def runtime_settings(cfg: Config) -> dict[str, str]:
    """How the network ran in training (precision, layout), which prediction repeats."""
    from braintumor.precision import resolve_precision

    return {
        "precision": resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator, say=False),
        "memory_format": cfg.trainer.memory_format,
    }
