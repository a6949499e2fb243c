"""Pretrained weights: local files or the standard torchvision ImageNet weights.

``load_pretrained(model, source)`` takes a ``.safetensors`` file, a ``.pth``/``.pt``
state dict (read with ``torch.load(weights_only=True)``, never full pickle) or
``"imagenet"``, which downloads the architecture's torchvision weights once into
``$BRAINTUMOR_CACHE/weights`` (default ``~/.cache/braintumor/weights``).

Loading adapts RGB weights to the model: a classifier head of another width is
skipped (it stays freshly initialised), and the first convolution is converted
to the model's channel count by spreading the summed RGB filter evenly over the
new channels (1 channel: the sum; 4 channels: the mean RGB filter x 3/4), so a
grey image gives the same first-layer response as the RGB original.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from braintumor.errors import ConfigError, DataError

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt")
_HASH = re.compile(r"-([a-f0-9]{6,})\.")  # torchvision names files <arch>-<sha256 prefix>.pth


@dataclass
class LoadReport:
    """What ``load_pretrained`` did, key by key."""

    source: str
    loaded: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)  # first conv converted from RGB
    skipped: list[str] = field(default_factory=list)  # head of another shape, left fresh
    missing: list[str] = field(default_factory=list)  # in the model, not in the file
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the model

    def summary(self) -> str:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

        parts = [f"loaded {len(self.loaded)} tensors from {self.source}"]
        for label, keys in (
            ("adapted to the input channels", self.adapted),
            ("skipped (new head)", self.skipped),
            ("missing in file", self.missing),
            ("unexpected in file", self.unexpected),
        ):
            if keys:
                parts.append(f"{label}: {few(keys)}")
        return "; ".join(parts)


def weights_cache_dir() -> Path:
    root = os.environ.get("BRAINTUMOR_CACHE") or Path.home() / ".cache" / "braintumor"
    return Path(root) / "weights"


def _manual_hint(url: str) -> str:
    return f"download {url} by hand and pass --pretrained PATH (config: model.pretrained=PATH)"


def download_weights(url: str, cache_dir: str | Path | None = None) -> Path:
    """Download ``url`` into the weights cache once; later calls reuse the file.

    Raises:
        DataError: when offline or the download is corrupt (torchvision file names
            carry a SHA-256 prefix, which is checked).
    """
    cache = Path(cache_dir) if cache_dir is not None else weights_cache_dir()
    dest = cache / url.rsplit("/", 1)[-1]
    if dest.is_file():
        return dest
    cache.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")  # never leave a half file under the real name
    log.info("downloading %s -> %s", url, dest)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(part, "wb") as f:
            shutil.copyfileobj(resp, f)
    except (urllib.error.URLError, OSError) as exc:
        part.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise DataError(f"could not download {url} ({reason}); {_manual_hint(url)}") from None
    m = _HASH.search(dest.name)
    if m:
        digest = hashlib.sha256(part.read_bytes()).hexdigest()
        if not digest.startswith(m.group(1)):
            part.unlink(missing_ok=True)
            raise DataError(
                f"download of {url} is corrupt (sha256 {digest[:8]}..., expected "
                f"{m.group(1)}...); retry, or {_manual_hint(url)}"
            )
    part.replace(dest)
    return dest


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read tensors from a ``.safetensors`` or ``.pth``/``.pt`` file, without full pickle."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(
            f"weights file {p} not found; pass an existing {'/'.join(WEIGHT_SUFFIXES)} file "
            "or 'imagenet'"
        )
    if p.suffix not in WEIGHT_SUFFIXES:
        raise DataError(f"weights file {p} must end in {', '.join(WEIGHT_SUFFIXES)}")
    try:
        if p.suffix == ".safetensors":
            obj: object = load_file(str(p), device="cpu")
        else:
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except (
        pickle.UnpicklingError,
        SafetensorError,
        RuntimeError,
        OSError,
        ValueError,
        EOFError,
    ) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"cannot read weights file {p} ({first[:200]}); it must be a state dict of tensors "
            "(torch.save(model.state_dict()) or .safetensors); a corrupt download can be deleted"
        ) from None
    # Training checkpoints wrap the state dict.
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    tensors = (
        {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if isinstance(obj, dict)
        else {}
    )
    if not tensors:
        raise DataError(f"weights file {p} holds no state dict of tensors")
    return tensors


def adapt_first_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Spread the summed input filter of ``weight`` (O x I x k x k) evenly over ``in_channels``."""
    total = weight.sum(dim=1, keepdim=True)
    return (total / in_channels).repeat(1, in_channels, 1, 1)


def _strip_prefix(sd: dict[str, torch.Tensor], model_keys: set[str]) -> dict[str, torch.Tensor]:
    # Wrapped checkpoints (DataParallel "module.", Lightning "model.") name keys with a prefix.
    best, hits = sd, len(model_keys & sd.keys())
    for prefix in ("module.", "model."):
        cand = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
        if len(model_keys & cand.keys()) > hits:
            best, hits = cand, len(model_keys & cand.keys())
    return best


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def load_pretrained(model: nn.Module, source: str | Path, strict: bool = False) -> LoadReport:
    """Load weights from a file or ``"imagenet"`` into ``model`` (in place).

    Args:
        model: a classifier (uses its ``imagenet_url``, ``first_conv`` and ``head_prefixes``).
        source: path to ``.safetensors``/``.pth``/``.pt``, or ``"imagenet"``.
        strict: also fail on missing or unexpected keys (otherwise they are logged).

    Raises:
        ConfigError: ``"imagenet"`` for an architecture without standard weights.
        DataError: unreadable file, download failure, or weights of another architecture.
    """
    name = type(model).__name__
    if str(source).lower() == "imagenet":
        url = getattr(model, "imagenet_url", None)
        if not url:
            raise ConfigError(
                f"{name} has no standard ImageNet weights (alexnet, vgg16, vgg16_ft and resnet50 "
                "do); pass a weights file as --pretrained PATH or drop --pretrained"
            )
        path = download_weights(url)
    else:
        path = Path(source).expanduser()
    src = read_state_dict(path)
    own = model.state_dict()
    src = _strip_prefix(src, set(own))
    first = f"{getattr(model, 'first_conv', '')}.weight"
    heads = tuple(getattr(model, "head_prefixes", ()))

    report = LoadReport(str(path))
    new: dict[str, torch.Tensor] = {}
    for key, tensor in src.items():
        if key not in own:
            report.unexpected.append(key)
            continue
        want = own[key].shape
        if tensor.shape == want:
            new[key] = tensor
            report.loaded.append(key)
        elif (
            key == first
            and tensor.ndim == 4
            and tensor.shape[0] == want[0]
            and tensor.shape[2:] == want[2:]
        ):
            new[key] = adapt_first_conv(tensor, want[1])
            report.loaded.append(key)
            report.adapted.append(key)
        elif _matches(key, heads):
            report.skipped.append(key)
        else:
            raise DataError(
                f"weights file {path}: {key} has shape {tuple(tensor.shape)} but {name} expects "
                f"{tuple(want)}; the file was saved from another architecture or configuration"
            )
    if not report.loaded:
        raise DataError(
            f"no tensor in weights file {path} matches {name} (file keys like "
            f"{', '.join(list(src)[:3])}; model keys like {', '.join(list(own)[:3])}); "
            "pass weights saved from the same architecture"
        )
    # Old checkpoints lack BatchNorm's step counter; it is irrelevant for the weights.
    report.missing = [k for k in own if k not in src and not k.endswith("num_batches_tracked")]
    if strict and (report.missing or report.unexpected):
        raise DataError(f"weights file {path} does not fit {name} exactly: {report.summary()}")
    model.load_state_dict(new, strict=False)
    (log.warning if report.missing or report.unexpected else log.info)("%s", report.summary())
    return report
