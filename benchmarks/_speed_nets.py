"""Network-level speed measurements for ``benchmarks/speed.py``.

Every figure is a wall-clock rate on random inputs: warm-up once, then repeat until
``min_s`` seconds have passed (at least one timed call). Variants:

- ``fp32``: eager, NCHW (the reference);
- ``cl``: channels-last weights and inputs;
- ``bf16``: ``torch.autocast(bfloat16)`` (CPU autocast, what Lightning's ``bf16-mixed`` does);
- ``bf16_cl``: both;
- ``cl_fold``, ``bf16_cl_fold``: the same on a copy with BatchNorm folded into the
  convolutions (``braintumor.inference.fold``; inference only, networks with conv + BN);
- ``compile``: ``torch.compile`` of the fp32 network (only where asked: compiling costs minutes);
- ``ort``: ONNX Runtime on the exported fp32 graph (inference only).
"""

from __future__ import annotations

import contextlib
import copy
import io
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

TRAIN_VARIANTS = ("fp32", "cl", "bf16", "bf16_cl")
# Without native bf16 (AVX512-BF16 / AMX) autocast is emulated: a bf16 matmul ran at 0.8
# GFLOP/s against fp32's 65 on an AVX2-only EPYC, so those variants are skipped there.
NO_BF16 = "skipped: no native bf16 on this CPU (autocast would be emulated)"


def runs_here(variant: str) -> bool:
    """False for the bf16 variants on a CPU without native bf16."""
    from braintumor.precision import cpu_has_bf16

    return not variant.startswith("bf16") or cpu_has_bf16()  # these loops run on the CPU


INFER_VARIANTS = ("fp32", "cl", "bf16", "bf16_cl", "cl_fold", "bf16_cl_fold", "ort")


def timed(fn: Callable[[], Any], min_s: float, windows: int = 3, warmup_s: float = 0.0) -> float:
    """Seconds per call of ``fn``: the best of ``windows`` timed windows of ``min_s`` each.

    Three untimed warm-up calls first (allocations, oneDNN kernel selection: bf16
    primitives settle after the first call or two), then more until ``warmup_s`` has
    passed: a training step keeps speeding up for seconds (allocator, primitive cache).
    The best window, as ``timeit`` reports, is the figure least disturbed by other work
    on the machine; every network and variant, peers included, is timed the same way.
    """
    for _ in range(3 if min_s > 0 else 1):
        fn()
    start = time.perf_counter()
    while min_s > 0 and time.perf_counter() - start < warmup_s:
        fn()
    best = float("inf")
    for _ in range(windows if min_s > 0 else 1):
        n, start = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_s:
                break
        best = min(best, elapsed / n)
    return best


def matmul_peak(min_s: float, n: int = 1024) -> dict[str, float]:
    """Measured GFLOP/s of a square matmul in fp32 and bf16 (the machine's practical peak)."""
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        s = timed(lambda a=a, b=b: a @ b, min_s)
        out[name] = 2 * n**3 / s / 1e9
    return out


def forward_flops(model: nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward pass on ``x`` (multiply-add = 2), by PyTorch's counter."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return float(counter.get_total_flops())


@contextlib.contextmanager
def _autocast(bf16: bool) -> Iterator[None]:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        yield


def _prepare(model: nn.Module, x: torch.Tensor, variant: str) -> tuple[nn.Module, torch.Tensor]:
    from braintumor.inference.fold import fold_batchnorm

    folded = fold_batchnorm(model.eval()) if "fold" in variant.split("_") else None
    m = folded or copy.deepcopy(model)  # the folded network is itself a copy
    if "cl" in variant.split("_"):
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if variant == "compile":
        m = torch.compile(m)  # type: ignore[assignment]
    return m, x


def _logits(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


_SESSIONS: dict[int, Callable[[Any], Any]] = {}


def cached_ort(model: nn.Module, x: torch.Tensor) -> Callable[[Any], Any]:
    """One exported session per network (an export costs seconds)."""
    if id(model) not in _SESSIONS:
        _SESSIONS.clear()
        _SESSIONS[id(model)] = ort_session(model, x)
    return _SESSIONS[id(model)]


def infer_seconds(model: nn.Module, x: torch.Tensor, variant: str, min_s: float) -> float:
    """Seconds per forward pass of batch ``x`` (no autograd)."""
    if variant == "ort":
        run = cached_ort(model, x)
        feed = x.numpy()
        return timed(lambda: run(feed), min_s)
    m, xv = _prepare(model.eval(), x, variant)
    bf16 = variant.startswith("bf16")

    def step() -> None:
        with torch.inference_mode(), _autocast(bf16):
            m(xv)

    return timed(step, min_s)


def train_seconds(
    model: nn.Module, x: torch.Tensor, variant: str, min_s: float, warmup_s: float = 0.0
) -> float:
    """Seconds per training step (forward, loss, backward, AdamW step) on batch ``x``."""
    m, xv = _prepare(model.train(), x, variant)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    bf16 = variant.startswith("bf16")

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with _autocast(bf16):
            loss = _logits(m(xv)).float().square().mean()
        loss.backward()
        opt.step()

    return timed(step, min_s, warmup_s=warmup_s)


def ort_session(model: nn.Module, x: torch.Tensor) -> Callable[[Any], Any]:
    """An ONNX Runtime call for ``model`` exported at ``x``'s shape (batch dynamic)."""
    import onnxruntime as ort

    from braintumor.inference.exportable import exportable

    model = model.eval()
    path = Path(tempfile.mkdtemp(prefix="speed-onnx-")) / "m.onnx"
    with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                exportable(model, x[:1]),
                (x[:1],),
                str(path),
                input_names=["x"],
                output_names=["y"],
                opset_version=17,
                dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
                dynamo=False,
            )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda feed: sess.run(None, {"x": feed})


def peak_rss_mb(fn: Callable[[], Any]) -> float | None:
    """Peak resident memory added while ``fn`` runs (MB), from /proc (Linux only)."""
    status = Path("/proc/self/status")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return None

    def field(name: str) -> float:
        for line in status.read_text().splitlines():
            if line.startswith(name):
                return float(line.split()[1]) / 1024
        return float("nan")

    before = field("VmRSS")
    fn()
    return field("VmHWM") - before


def max_abs_diff(model: nn.Module, x: torch.Tensor, variant: str) -> float:
    """Largest |logit difference| of a variant against eager fp32 (the fast-path check)."""
    with torch.inference_mode():
        ref = _logits(model.eval()(x)).float()
        if variant == "ort":
            got = torch.from_numpy(cached_ort(model, x)(x.numpy())[0])
        else:
            m, xv = _prepare(model, x, variant)
            with _autocast(variant.startswith("bf16")):
                got = _logits(m(xv)).float()
    return float((got - ref).abs().max())
