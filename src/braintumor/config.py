"""Typed run configuration, loaded from YAML with dotted ``key=value`` overrides.

Every run writes its resolved config (``config.yaml``) into the run folder, so a
figure can always be traced back to the exact settings that produced it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from braintumor.errors import ConfigError


@dataclass
class DataConfig:
    spec: str = "synthetic"  # FORMAT[:PATH], e.g. "lgg:/data/kaggle_3m"
    image_size: int = 128  # square side after crop/pad/resize
    channels: int | None = None  # None: the format's natural channel count
    # Crop dark/white margins around the head before resizing. None: the task decides
    # (classification crops; segmentation does not, so masks map back onto the input).
    crop: bool | None = None
    val_fraction: float = 0.15  # carved from the training patients only
    test_fraction: float = 0.15  # used only when the data set has no official test split
    batch_size: int = 32
    num_workers: int = 0
    augment: bool = True
    intensity_aug: bool = False  # gamma / contrast / brightness (down to 0.2x) augmentation
    # Spatial augmentation strength: random rotation up to +-rotate_degrees and zoom by
    # up to +-scale_range (a fraction), each applied to half the training samples.
    rotate_degrees: float = 15.0
    scale_range: float = 0.1
    # Probability of replacing each non-FLAIR channel by FLAIR in training (LGG: some
    # cases repeat FLAIR in place of a missing sequence).
    channel_dropout: float = 0.0
    neighbours: int = 0  # 2.5D: FLAIR of this many slices on either side as extra channels
    oversample_tumor: float = 1.0  # training draws tumor slices this many times as often
    # Classification: mix training batches (data/mixing.py); Beta(alpha, alpha), 0 = off.
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    cache: bool = True  # cache preprocessed arrays on disk
    cache_dir: str | None = None  # default: $BRAINTUMOR_CACHE or ~/.cache/braintumor
    limit: int | None = None  # use at most this many samples (quick runs)
    options: dict[str, Any] = field(default_factory=dict)  # format-specific options


@dataclass
class ModelConfig:
    name: str = "simple_cnn"
    kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None  # path to a weights file, or "imagenet"
    freeze_epochs: int = 0  # train only the head for this many epochs, then unfreeze
    # Classification on a data set with masks: weight of the auxiliary "which cells hold
    # tumour" loss on the last conv map (engine/aux_mask.py; training only). 0: off.
    aux_mask: float = 0.0


@dataclass
class OptimConfig:
    optimizer: str = "adamw"  # adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9  # sgd only
    # cosine (warm-up + cosine; spans trainer.max_minutes when set) | onecycle | plateau | none
    scheduler: str = "cosine"
    warmup_epochs: int = 1
    label_smoothing: float = 0.0
    class_weights: bool = False  # weight the loss by inverse class frequency


@dataclass
class TrainerConfig:
    epochs: int = 10
    accelerator: str = "auto"  # cpu | gpu | auto
    devices: str = "auto"  # "auto", "1", "4", ...
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | ...
    # auto | 32-true | bf16-mixed | 16-mixed. auto: bf16-mixed on a CPU with native bf16
    # (it matched fp32's val metrics at equal minutes on the shipped recipes, BENCHMARKS.md),
    # else 32-true. An explicit bf16-mixed on a CPU without native bf16 falls back to
    # 32-true with one printed line (braintumor/precision.py).
    precision: str = "auto"
    memory_format: str = "auto"  # auto (channels-last for conv nets) | channels_last | contiguous
    compile: bool = False  # torch.compile the network's forward (see BENCHMARKS.md)
    patience: int = 0  # early stopping on the val monitor; 0 disables
    # Validation metric that selects the checkpoint and drives early stopping / plateau;
    # None: the task's default (balanced_accuracy; dice per image for segmentation).
    monitor: str | None = None
    # Wall-clock budget for training; a cosine/onecycle LR schedule spans it.
    max_minutes: float | None = None
    # Exponential moving average of the weights (e.g. 0.99 per step); validation, the
    # checkpoint and the saved model use the average. 0 disables.
    ema_decay: float = 0.0
    # Segmentation: "val" chooses flip TTA and the smallest 3-D component kept per volume
    # on the validation split once training ends (engine/levers.py); the model card
    # records the choice and evaluation / prediction apply it. "tta": flip TTA (and the
    # segmenter-as-gate threshold) only, never a component removal. "off": none.
    levers: str = "off"
    log_every_n_steps: int = 10
    progress: bool = True
    deterministic: bool = False
    limit_train_batches: float | None = None  # quick runs / tests


@dataclass
class Config:
    task: str = "classification"  # classification | segmentation
    loss: str | None = None  # None: cross_entropy (classification) / dice_bce (segmentation)
    threshold: float = 0.5  # segmentation: probability threshold for the mask
    seed: int = 42
    folds: int = 0  # >1: patient-level K-fold cross-validation
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_str(tp: Any) -> bool:
    """``str`` or ``str | None``."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return tp is str or (typing.get_origin(tp) in (typing.Union, types.UnionType) and args == [str])


def _yaml_value(raw: str, key: str) -> Any:
    """One ``--set`` value parsed as YAML (``{a: 1}``, ``[1, 2]``, ``true``, ``3e-4``)."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ConfigError(
            f"config key {key!r}: {raw!r} is not a valid YAML value; quote it or fix the "
            "brackets (e.g. --set 'data.options={n_patients: 8}')"
        ) from None


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (often a string from ``--set``) to the annotated type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        return _coerce(value, args[0], key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping, got {value!r}")
        return _build(tp, value, prefix=key + ".")
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = _yaml_value(value, key)
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r} must be a mapping, got {value!r}")
        return dict(value)
    try:
        if tp is bool:
            if isinstance(value, str):
                low = value.lower()
                if low in ("true", "1", "yes", "on"):
                    return True
                if low in ("false", "0", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if tp is float:
            return float(value)
        if tp is str:
            if isinstance(value, bool):  # YAML 1.1 reads an unquoted off/on as a bool
                return "on" if value else "off"
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"config key {key!r}: cannot read {value!r} as {getattr(tp, '__name__', tp)}"
        ) from None
    return value


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = _field_types(cls)
    unknown = [k for k in data if k not in hints]
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix + unknown[0]!r}; valid keys under "
            f"{prefix.rstrip('.') or 'the top level'}: {', '.join(hints)}"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build a :class:`Config`, rejecting unknown keys."""
    return _build(Config, data or {})


def apply_override(cfg: Config, assignment: str) -> Config:
    """Apply one ``dotted.key=value`` override, e.g. ``data.image_size=256``."""
    if "=" not in assignment:
        raise ConfigError(f"override {assignment!r} must look like key=value (data.image_size=256)")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    obj: Any = cfg
    for i, part in enumerate(parts):
        hints = _field_types(type(obj))
        prefix = ".".join(parts[:i])
        if part not in hints:
            where = prefix or "the top level"
            raise ConfigError(
                f"unknown config key {key!r}; valid keys under {where}: {', '.join(hints)}"
            )
        if i == len(parts) - 1:
            tp = hints[part]
            if typing.get_origin(tp) is dict or tp is dict or _is_str(tp):
                value: Any = _coerce(raw, tp, key)  # a string stays as typed ("off")
            else:
                parsed = _yaml_value(raw, key) if raw.strip() else raw
                value = _coerce(parsed, tp, key)
            setattr(obj, part, value)
        else:
            nxt = getattr(obj, part)
            if isinstance(nxt, dict):  # e.g. model.kwargs.n_filters=16
                rest = ".".join(parts[i + 1 :])
                nxt[rest] = _yaml_value(raw, key)
                return cfg
            obj = nxt
    return cfg


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where (1-based line/column), on one line."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}; fix the syntax there"


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (optional) and apply dotted overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path).expanduser()
        if p.is_dir():
            raise ConfigError(f"config file {p} is a folder; pass a YAML file")
        if not p.is_file():
            raise ConfigError(f"config file {p} not found; pass an existing YAML file")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError:
            raise ConfigError(f"config file {p} is not a text file; pass a YAML file") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {_yaml_problem(exc)}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p} must hold a mapping of keys to values")
    cfg = config_from_dict(data)
    for ov in overrides or []:
        apply_override(cfg, ov)
    return cfg


def config_to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically (a crash keeps the old file)."""
    from braintumor.atomic import write_text_atomic

    write_text_atomic(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
