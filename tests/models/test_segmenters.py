"""Every registered segmentation model: shapes, gradients, input checks, attention maps."""

from __future__ import annotations

import pytest
import torch

from braintumor.errors import ConfigError
from braintumor.models import count_params, create_model, list_models
from braintumor.models.registry import model_entry

SEGMENTERS = list_models("segmentation")


def test_expected_segmenters_registered() -> None:
    expected = {"unet", "unet_transposed", "improved_unet", "attention_unet", "resunet"}
    assert expected | {"basic_unet", "segresnet"} <= set(SEGMENTERS)
    for name in SEGMENTERS:
        assert model_entry(name).description, f"{name} has no one-line description"


@pytest.mark.parametrize("name", SEGMENTERS)
@pytest.mark.parametrize(("in_ch", "out_ch", "width"), [(1, 1, {"n_filters": 8}), (4, 3, {})])
def test_forward_backward(name: str, in_ch: int, out_ch: int, width: dict[str, int]) -> None:
    torch.manual_seed(0)
    model = create_model(name, in_channels=in_ch, num_classes=out_ch, **width)
    x = torch.randn(2, in_ch, 32, 32)
    y = model(x)
    assert y.shape == (2, out_ch, 32, 32)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", SEGMENTERS)
def test_non_divisible_input_is_a_clear_error(name: str) -> None:
    model = create_model(name, in_channels=1, num_classes=1).eval()
    with pytest.raises(ConfigError, match=r"height and width must be divisible by \d+") as info:
        model(torch.randn(1, 1, 36, 40))
    msg = str(info.value)
    assert name in msg and "pad to" in msg


def test_divisibility_message_names_the_padded_size() -> None:
    model = create_model("unet", in_channels=1, num_classes=1).eval()
    with pytest.raises(ConfigError, match=r"divisible by 16, got 33x40; pad to \(48, 48\)"):
        model(torch.randn(1, 1, 33, 40))


def test_depth_sets_the_required_divisor() -> None:
    model = create_model("unet", in_channels=1, num_classes=2, depth=2, n_filters=4).eval()
    assert model(torch.randn(1, 1, 36, 36)).shape == (1, 2, 36, 36)  # 36 % 4 == 0


def test_attention_maps() -> None:
    model = create_model("attention_unet", in_channels=4, num_classes=3, n_filters=8)
    x = torch.randn(2, 4, 32, 32)
    logits, maps = model(x, return_attention=True)
    assert logits.shape == (2, 3, 32, 32)
    assert [m.shape[-1] for m in maps] == [4, 8, 16, 32]  # coarse to fine, one per skip
    for m in maps:
        assert m.shape[:2] == (2, 1) and m.shape[-2] == m.shape[-1]
        assert (m >= 0).all() and (m <= 1).all()
    assert torch.equal(model.eval()(x), model(x, return_attention=True)[0])


def test_improved_unet_is_lighter_than_unet() -> None:
    # The point of separable convs and additive skips: far fewer weights.
    n_unet = count_params(create_model("unet", in_channels=4, num_classes=3))
    n_improved = count_params(create_model("improved_unet", in_channels=4, num_classes=3))
    n_attention = count_params(create_model("attention_unet", in_channels=4, num_classes=3))
    assert n_improved < 0.5 * n_unet
    assert n_improved < n_attention < 1.1 * n_improved  # gates add only a few weights


def test_n_filters_scales_the_network() -> None:
    small = count_params(create_model("unet", in_channels=1, num_classes=1, n_filters=8))
    big = count_params(create_model("unet", in_channels=1, num_classes=1, n_filters=16))
    assert 3.5 < big / small < 4.1  # conv weights grow with channels squared


def test_segresnet_rejects_bad_width_and_unknown_kwargs() -> None:
    with pytest.raises(ConfigError, match="multiple of 8"):
        create_model("segresnet", in_channels=1, num_classes=1, n_filters=12)
    with pytest.raises(ConfigError, match="unet"):
        create_model("unet", in_channels=1, num_classes=1, no_such_option=3)


def test_segresnet_deep_supervision_trains_three_scales_and_infers_as_segresnet() -> None:
    torch.manual_seed(0)
    ds = create_model("segresnet", in_channels=3, num_classes=2, deep_supervision=True)
    x = torch.randn(2, 3, 32, 32)
    outs = ds.train()(x)
    assert [tuple(o.shape) for o in outs] == [(2, 2, 32, 32), (2, 2, 16, 16), (2, 2, 8, 8)]
    sum(o.square().mean() for o in outs).backward()
    missing = [n for n, p in ds.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    # In eval mode the heads are unused: the same weights give plain SegResNet's output.
    plain = create_model("segresnet", in_channels=3, num_classes=2)
    state = {k: v for k, v in ds.state_dict().items() if ".aux_heads." not in k}
    plain.load_state_dict(state)
    ds.eval(), plain.eval()
    with torch.no_grad():
        assert torch.equal(ds(x), plain(x))
