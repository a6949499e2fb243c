"""A network made exportable to ONNX (the graph behind ``serve``'s export and the
``onnxruntime`` inference backend): adaptive pools whose bins the TorchScript
exporter refuses become matrix products at a fixed input size."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

INPUT_NAME = "image"
OUTPUT_NAME = "logits"


def _pool_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """``n_out x n_in`` averaging matrix of PyTorch's adaptive pooling bins."""
    m = torch.zeros(n_out, n_in)
    for k in range(n_out):
        start, end = (k * n_in) // n_out, -(-((k + 1) * n_in) // n_out)
        m[k, start:end] = 1.0 / (end - start)
    return m


class MatmulAdaptiveAvgPool2d(nn.Module):
    """``AdaptiveAvgPool2d`` for one fixed input size, as two matrix products.

    The TorchScript exporter refuses adaptive pooling whose output size does not divide
    the input size (VGG's 7 x 7 and AlexNet's 6 x 6 pools at 128 px, for instance). At a
    fixed input size the bins are known, so ``rows @ x @ cols`` computes the same average.
    """

    def __init__(self, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer("rows", _pool_matrix(in_hw[0], out_hw[0]))
        self.register_buffer("cols", _pool_matrix(in_hw[1], out_hw[1]).T.contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rows @ x @ self.cols


def exportable(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """``model``, or a copy with its non-divisible adaptive pools made exportable."""
    sizes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}

    def record(name: str) -> Callable[..., None]:
        def hook(_m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            sizes[name] = (tuple(inp[0].shape[-2:]), tuple(out.shape[-2:]))

        return hook

    pools = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    handles = [m.register_forward_hook(record(n)) for n, m in pools]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    odd = {n: io for n, io in sizes.items() if io[0][0] % io[1][0] or io[0][1] % io[1][1]}
    if not odd:
        return model
    model = copy.deepcopy(model)
    for name, (in_hw, out_hw) in odd.items():
        model.set_submodule(
            name, MatmulAdaptiveAvgPool2d((in_hw[0], in_hw[1]), (out_hw[0], out_hw[1]))
        )
    return model


__all__ = ["INPUT_NAME", "OUTPUT_NAME", "MatmulAdaptiveAvgPool2d", "exportable"]
