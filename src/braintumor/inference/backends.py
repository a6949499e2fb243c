"""Inference runtimes: how a trained network runs for ``predict``, ``pipeline``,
``evaluate`` and ``serve`` (:class:`Runtime`, used by
:class:`~braintumor.inference.predictor.Predictor` and
:func:`~braintumor.engine.evaluate.evaluate_model`).

Variants (each returns the network's logits):

- ``eager fp32`` in the card's memory layout: the reference;
- ``eager fp32 channels-last``, where the card's layout is contiguous (same arithmetic,
  reordered: equal to ~1e-6);
- ``eager bf16`` autocast, in either layout: only where the CPU runs bfloat16 natively
  (:func:`~braintumor.precision.cpu_has_bf16`);
- ``folded``: where the network has conv + BatchNorm pairs, every candidate above
  except the reference runs on a copy with BatchNorm folded into the convolutions
  (:mod:`braintumor.inference.fold`; in fp32 equal to the reference to ~1e-6), plus
  ``eager fp32 folded`` in the card's layout;
- ``onnxruntime fp32``: the network exported to ONNX (the graph of
  :mod:`braintumor.serve.export`) and run by ONNX Runtime on the CPU. An export costs
  0.2-2 s, so it is made once per runtime (in memory, no file left behind).

``backend`` chooses:

- ``auto`` (the default on a CPU): every variant above is timed on the first real
  batch (its first :data:`CALIBRATION_ITEMS` images; a warm-up call, then the best of
  two timed calls, interleaved across the variants so that a burst of other load slows
  them alike; a variant whose warm-up is 3x the reference's is not timed), and
  the fastest *eligible* one runs from then on. Contiguous layouts are tried only where
  the card's layout is contiguous (channels-last is the faster for the project's conv
  nets, :mod:`braintumor.precision`). ONNX Runtime is tried only where eager's best is
  less than :data:`ORT_WORTH_TRYING` times the reference (measured: it wins only where
  bf16/channels-last gain little; this keeps its 0.2-2 s export out of the calibration
  of the networks it never wins on). Calibration
  costs a few forward passes of :data:`CALIBRATION_ITEMS` images, once per runtime;
  a decision for a run folder is remembered in memory (per weights file, input
  shape and thread count), so a process loading the same run again does not time
  it again. A run trained in bf16 (the card's ``runtime.precision``), or an explicit
  ``precision``, pins the precision: eager, as trained, no timing.
- ``eager``: the card's precision and memory layout, as trained.
- ``onnxruntime``: ONNX Runtime, or eager after one line saying why it cannot.

The default is ``$BRAINTUMOR_BACKEND`` when set (e.g. ``eager`` for exact
reproduction), else the card's ``runtime.backend``, else ``auto``. On a GPU the
network runs eager as the card says (no timing).

Tolerance (eligibility): a variant runs only if, on the calibration batch, its output
agrees with eager fp32's within :mod:`braintumor.inference.variants`' tolerance.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import torch
from torch import nn

from braintumor.inference.ort import OrtModule, onnx_module, try_onnx
from braintumor.inference.variants import (
    CALIBRATION_ITEMS,
    CLS_PROB_ATOL,
    ORT_WORTH_TRYING,
    SEG_MASK_AGREEMENT,
    SEG_PROB_ATOL,
    Variant,
    agreement,
    seconds,
    seconds_per_batch,
    smooth_batch,
)

BACKENDS = ("eager", "onnxruntime", "auto")


ENV_BACKEND = "BRAINTUMOR_BACKEND"

_log = logging.getLogger(__name__)
_DECISIONS: dict[tuple[Any, ...], Variant] = {}  # calibration results, per process


def _has_weights(model: nn.Module) -> bool:
    return any(True for _ in model.parameters())


class Runtime:
    """A network as a logits function, run in the variant ``backend`` selects.

    Args:
        model: the network (eval mode; its memory layout is set here).
        task: ``classification`` or ``segmentation`` (for the tolerance check).
        device: where it runs.
        runtime: the card's ``runtime`` (precision, memory format, backend).
        precision: an explicit precision (pins eager at that precision).
        backend: ``eager`` / ``onnxruntime`` / ``auto``; default: see the module docstring.
        threshold: the run's mask threshold (segmentation tolerance).
        memory_format: the layout when the card has none.
        input_shape: ``(channels, size)`` of the network's input; an explicit
            ``onnxruntime`` exports at construction and needs it.
        label: the model's name for notes.
        cache_key: identifies the weights (e.g. the run's weights file and its mtime) for
            the in-memory decision cache; None: no caching.
        bf16: whether ``auto`` may choose bf16 variants (``evaluate`` does not).
    """

    def __init__(
        self,
        model: nn.Module,
        task: str,
        device: torch.device,
        runtime: dict[str, Any] | None = None,
        *,
        precision: str | None = None,
        backend: str | None = None,
        threshold: float = 0.5,
        memory_format: str = "auto",
        input_shape: tuple[int, int] | None = None,
        label: str = "this model",
        cache_key: tuple[Any, ...] | None = None,
        bf16: bool = True,
    ) -> None:
        from braintumor.errors import ConfigError
        from braintumor.precision import resolve_precision, use_channels_last

        runtime = runtime or {}
        self.model, self.task, self.device = model, task, torch.device(device)
        self.threshold, self.label, self.bf16 = float(threshold), label, bf16
        self.input_shape = input_shape
        choice = backend or os.environ.get(ENV_BACKEND) or runtime.get("backend") or "auto"
        if choice not in BACKENDS:
            raise ConfigError(f"unknown backend {choice!r}; use one of: {', '.join(BACKENDS)}")
        accelerator = "cpu" if self.device.type == "cpu" else "gpu"
        trained = str(runtime.get("precision", "32-true"))
        resolved = resolve_precision(precision or trained, accelerator)
        layout = use_channels_last(model, runtime.get("memory_format", memory_format), resolved)
        self.reference = Variant("eager", "32-true", layout)
        self.variant = Variant("eager", resolved, layout)
        self.note: str | None = None  # why a variant was refused, for the log
        self._ort: OrtModule | None = None
        self._folded: nn.Module | None = None  # the BatchNorm-folded copy, while a candidate
        self._lock = threading.Lock()
        pinned = precision is not None or trained not in ("32-true", "32")
        self._key = None if cache_key is None else (*cache_key, torch.get_num_threads(), bf16)
        self.pending = (
            choice == "auto" and self.device.type == "cpu" and not pinned and _has_weights(model)
        )
        if choice == "onnxruntime" and self.device.type == "cpu":
            channels, size = input_shape or (1, 0)
            self._ort = try_onnx(model, channels, size, label)
            if self._ort is not None:
                self.variant = Variant("onnxruntime")
        self._install(self.variant)

    @property
    def name(self) -> str:
        """What runs: ``auto (not calibrated yet)`` until the first batch, then the variant."""
        return "auto (not calibrated yet)" if self.pending else self.variant.name

    def _install(self, variant: Variant) -> None:
        from braintumor.precision import set_layout

        if variant.engine == "eager":
            set_layout(self._network(variant), variant.channels_last)
        self.variant = variant

    def _network(self, variant: Variant) -> nn.Module:
        if variant.folded:
            assert self._folded is not None
            return self._folded
        return self.model

    @torch.no_grad()
    def _run(self, variant: Variant, x: torch.Tensor) -> torch.Tensor:
        from braintumor.precision import as_layout, autocast_dtype

        if variant.engine == "onnxruntime":
            assert self._ort is not None
            return self._ort(x.contiguous()).float()  # ORT takes NCHW
        dtype = autocast_dtype(variant.precision)
        with torch.autocast(
            self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None
        ):
            return self._network(variant)(as_layout(x, variant.channels_last)).float()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (fp32) of a batch; the first call under ``auto`` calibrates on it."""
        if self.pending:
            with self._lock:  # a service's concurrent first requests calibrate once
                if self.pending:
                    self.calibrate(x)
        return self._run(self.variant, x)

    def _candidates(self) -> list[Variant]:
        from braintumor.precision import cpu_has_bf16

        ref = self.reference
        fold = self._build_folded()
        layouts = [ref.channels_last]  # and channels-last for any network with convolutions
        if not ref.channels_last and any(
            isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in self.model.modules()
        ):
            layouts.append(True)
        out = [ref] + [Variant("eager", "32-true", cl, fold) for cl in layouts[1:]]
        if fold:
            out.insert(1, Variant("eager", "32-true", ref.channels_last, True))
        if self.bf16 and cpu_has_bf16():
            out += [Variant("eager", "bf16-mixed", cl, fold) for cl in layouts]
        return out

    def _rounds(self, variants: list[Variant], x: torch.Tensor, timings: dict) -> None:
        """Two round-robin timed calls of each variant (a burst of load elsewhere then
        slows them all alike); ``timings`` keeps each one's best."""
        for _ in range(2):
            for variant in variants:
                self._install(variant)
                spent = seconds(lambda v=variant: self._run(v, x))
                timings[variant] = min(timings.get(variant, float("inf")), spent)

    def calibrate(self, batch: torch.Tensor | None = None) -> Variant:
        """Time the candidate variants on (the first images of) ``batch`` and keep the
        fastest eligible one. Without a batch: smooth random images of
        ``input_shape``."""
        if batch is None:
            channels, size = self.input_shape or (1, 64)
            batch = smooth_batch(CALIBRATION_ITEMS, channels, size).to(self.device)
        x = batch[:CALIBRATION_ITEMS]
        key = None if self._key is None else (*self._key, tuple(x.shape[1:]))
        cached = _DECISIONS.get(key) if key is not None else None
        if cached is not None and (cached.engine == "eager" or self._build_ort(x)):
            if cached.folded:
                self._build_folded()
            self._install(cached)
            self.pending = False
            return cached
        started = time.perf_counter()
        ref = self.reference
        self._install(ref)
        start = time.perf_counter()
        want = self._run(ref, x)  # the warm-up call gives the reference output
        warm: dict[Variant, float] = {ref: time.perf_counter() - start}
        refused: list[str] = []

        def eligible(variant: Variant) -> bool:
            """Warm-up call, checked against the reference; False for a clear loser."""
            self._install(variant)
            start = time.perf_counter()
            got = self._run(variant, x)
            warm[variant] = time.perf_counter() - start
            why = agreement(self.task, self.threshold, want, got)
            if why is not None:
                refused.append(f"{variant.name}: {why}")
                return False
            return warm[variant] <= 3 * warm[ref]  # allowing for its one-time set-up

        timings: dict[Variant, float] = {}
        self._rounds([ref, *(v for v in self._candidates()[1:] if eligible(v))], x, timings)
        eager_best = min(timings, key=lambda v: timings[v])
        ort = Variant("onnxruntime")
        if (
            timings[ref] / timings[eager_best] < ORT_WORTH_TRYING
            and self._build_ort(x)
            and eligible(ort)
        ):
            self._rounds([eager_best, ort], x, timings)  # head to head, interleaved
        best = min(timings, key=lambda v: timings[v])
        _log.debug("%s: %s", self.label, {v.name: round(t, 4) for v, t in timings.items()})
        self._install(best)
        if best.engine != "onnxruntime":
            self._ort = None  # free the session (and its thread pool)
        if not best.folded:
            self._folded = None
        self.pending = False
        self.note = "; ".join(refused) or None
        if key is not None:
            _DECISIONS[key] = best
        _log.info(
            "%s: %s (%.0f img/s vs %.0f eager fp32; calibrated in %.2f s%s)",
            self.label,
            best.name,
            len(x) / timings[best],
            len(x) / timings[ref],
            time.perf_counter() - started,
            f"; refused {self.note}" if self.note else "",
        )
        return best

    def _build_folded(self) -> bool:
        """The BatchNorm-folded copy of the network; False when it has nothing to fold."""
        from braintumor.inference.fold import fold_batchnorm

        self._folded = fold_batchnorm(self.model)
        return self._folded is not None

    def _build_ort(self, x: torch.Tensor) -> bool:
        """An ONNX Runtime session at ``x``'s shape, quietly (auto: just no candidate)."""
        if self._ort is not None:
            return True
        if self.device.type != "cpu":
            return False
        try:
            self._ort = onnx_module(
                self.model, int(x.shape[1]), int(x.shape[-1]), torch.get_num_threads()
            )
        except Exception as exc:  # noqa: BLE001 - any failure only means: no ORT here
            _log.info("%s: ONNX Runtime not a candidate (%s)", self.label, exc)
            return False
        finally:
            self._install(self.variant)  # the export may have moved the weights' layout
        return True


def forget_decisions() -> None:
    """Empty the in-memory calibration cache (tests; a changed machine)."""
    _DECISIONS.clear()


__all__ = [
    "BACKENDS",
    "CLS_PROB_ATOL",
    "SEG_MASK_AGREEMENT",
    "SEG_PROB_ATOL",
    "OrtModule",
    "Runtime",
    "Variant",
    "agreement",
    "forget_decisions",
    "onnx_module",
    "seconds_per_batch",
    "smooth_batch",
    "try_onnx",
]
