"""BatchNorm folding (``inference.fold``) and its place among the runtime's candidates."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import braintumor.inference.backends as backends
import braintumor.precision as precision
from braintumor.inference.backends import Runtime, forget_decisions
from braintumor.inference.fold import fold_batchnorm, foldable_pairs
from braintumor.models.registry import create_model


def _with_statistics(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics and affine parameters (a trained network's)."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model.eval()


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("custom_cnn", {"num_classes": 4}),
        ("unet", {"batch_norm": True}),  # the LGG recipe's unet
        ("resunet", {}),
        ("attention_unet", {}),
    ],
)
def test_folded_copy_equals_the_network_and_leaves_it_alone(name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    model = _with_statistics(create_model(name, in_channels=1, **{"num_classes": 2, **kwargs}))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    folded = fold_batchnorm(model)
    assert folded is not None and foldable_pairs(model) > 0
    left = sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert left == n_bn - foldable_pairs(model) and left < n_bn
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), folded(x), atol=1e-4, rtol=1e-4)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == n_bn


def test_nothing_to_fold_gives_none() -> None:
    assert fold_batchnorm(create_model("vit", in_channels=1, num_classes=2)) is None
    # A BatchNorm not right after a convolution, or without running statistics, stays.
    assert fold_batchnorm(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2))) is None
    no_stats = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False))
    assert fold_batchnorm(no_stats) is None
    assert fold_batchnorm(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))) is not None


def test_the_runtime_offers_folded_variants_and_remembers_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forget_decisions()
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(backends, "ORT_WORTH_TRYING", 0.0)
    model = _with_statistics(create_model("custom_cnn", in_channels=1, num_classes=4))
    rt = Runtime(model, "classification", torch.device("cpu"), memory_format="contiguous")
    names = [v.name for v in rt._candidates()]
    assert names == ["eager fp32", "eager fp32 folded", "eager fp32 channels-last folded"]
    plain = Runtime(create_model("vit", in_channels=1, num_classes=2), "classification", "cpu")
    assert not any(v.folded for v in plain._candidates())
    # Whatever wins, the output is the reference's; a folded winner is remembered.
    x = torch.rand(8, 1, 64, 64)
    monkeypatch.setattr(backends, "seconds", lambda run: (run(), 0.5)[1])
    fast = {"eager fp32 channels-last folded": 0.1}
    monkeypatch.setattr(
        Runtime, "_rounds", lambda self, vs, x, t: t.update({v: fast.get(v.name, 1.0) for v in vs})
    )
    key = ("weights", 1)
    rt = Runtime(model, "classification", "cpu", memory_format="contiguous", cache_key=key)
    assert rt.calibrate(x).name == "eager fp32 channels-last folded"
    with torch.no_grad():
        assert torch.allclose(rt(x), model.to(memory_format=torch.contiguous_format)(x), atol=1e-4)
    again = Runtime(model, "classification", "cpu", memory_format="contiguous", cache_key=key)
    assert again.calibrate(x).folded and again._folded is not None
    assert torch.allclose(again(x), rt(x), atol=1e-5)
