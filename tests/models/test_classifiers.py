"""Every registered classifier: forward, backward, head swap, Grad-CAM hook, freezing, layouts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from braintumor.errors import ConfigError
from braintumor.models import count_params, create_model, list_models
from braintumor.models.registry import model_entry

CLASSIFIERS = list_models("classification")
FIXTURES = Path(__file__).parent / "fixtures"
SIZE = 64  # every architecture takes 64 px (alexnet needs >= 63)
SMALL = {"vgg16": 32, "resnet50": 32}  # the heavy nets at their smallest sensible size


def _input(channels: int, size: int = SIZE) -> torch.Tensor:
    return torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(0))


def _one_per_class() -> list[str]:
    # vgg16_ft is vgg16 with another freeze list (tested below): run the costly
    # forward/backward tests once per network class.
    seen: dict[type, str] = {}
    with torch.device("meta"):
        for name in CLASSIFIERS:
            seen.setdefault(type(create_model(name, in_channels=1, num_classes=2)), name)
    return list(seen.values())


NETWORKS = _one_per_class()


def test_registry_lists_all_classifiers() -> None:
    expected = {"simple_cnn", "custom_cnn", "alexnet", "vgg16", "vgg16_ft", "resnet50", "vit"}
    assert expected <= set(CLASSIFIERS)
    for name in CLASSIFIERS:
        assert model_entry(name).description  # first docstring line, shown by `models`


@pytest.fixture(scope="module", params=NETWORKS)
def gray(request: pytest.FixtureRequest) -> tuple[torch.nn.Module, torch.Tensor]:
    """A 1-channel, 3-class instance of each network and its input, shared by the
    tests below (building vgg16 takes seconds); tests that change it put it back."""
    torch.manual_seed(0)
    model = create_model(request.param, in_channels=1, num_classes=3)
    return model, _input(1, SMALL.get(request.param, SIZE))


def test_forward_gives_finite_logits(gray: tuple[torch.nn.Module, torch.Tensor]) -> None:
    model, x = gray
    with torch.no_grad():
        out = model.eval()(x)
    assert out.shape == (2, 3)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("name", NETWORKS)
def test_forward_takes_rgb_and_four_channel_input(name: str, channels: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, in_channels=channels, num_classes=3).eval()
    with torch.no_grad():
        out = model(_input(channels, SMALL.get(name, SIZE)))
    assert out.shape == (2, 3)
    assert torch.isfinite(out).all()


def test_backward_reaches_every_parameter(gray: tuple[torch.nn.Module, torch.Tensor]) -> None:
    model, x = gray
    model.train()
    loss = F.cross_entropy(model(x), torch.tensor([0, 2]))
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    zero = [n for n, p in model.named_parameters() if p.grad is not None and not p.grad.any()]
    model.zero_grad(set_to_none=True)
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    assert not zero, f"parameters with an all-zero gradient: {zero[:5]}"


def test_reset_classifier_changes_output_width(gray: tuple[torch.nn.Module, torch.Tensor]) -> None:
    model, x = gray
    model.eval().reset_classifier(5)
    try:
        with torch.no_grad():
            assert model(x).shape == (2, 5)
            feats = model.forward_features(x)
            assert model.forward_head(feats).shape == (2, 5)
            assert model.forward_head(feats, pre_logits=True).shape[0] == 2
        assert model.num_classes == 5
    finally:
        model.reset_classifier(3)
    head = {id(p) for p in model.head_parameters()}
    backbone = {id(p) for p in model.backbone_parameters()}
    assert head and backbone and not head & backbone
    assert head | backbone == {id(p) for p in model.parameters()}


def test_cam_layer_is_a_4d_activation_that_the_logits_depend_on(
    gray: tuple[torch.nn.Module, torch.Tensor],
) -> None:
    model, x = gray
    seen: list[torch.Tensor] = []
    handle = model.eval().cam_layer().register_forward_hook(lambda m, i, o: seen.append(o))
    try:
        out = model(x)
    finally:
        handle.remove()
    assert len(seen) == 1 and seen[0].ndim == 4 and seen[0].shape[0] == 2
    (grad,) = torch.autograd.grad(out[:, 0].sum(), seen[0])
    assert grad.abs().sum() > 0  # Grad-CAM needs a gradient at this layer


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_freeze_backbone_keeps_only_the_listed_prefixes_trainable(name: str) -> None:
    with torch.device("meta"):  # layout only: no memory, no init cost
        model = create_model(name, in_channels=1, num_classes=3)
    trainable = set(model.freeze_backbone())
    assert trainable == {n for n, p in model.named_parameters() if p.requires_grad}
    head = {n for n, _ in model.named_parameters() if n.split(".")[0] in model.head_prefixes}
    assert head <= trainable
    assert len(trainable) < len(list(model.parameters()))
    model.freeze_backbone(False)
    assert all(p.requires_grad for p in model.parameters())


def test_vgg16_ft_also_unfreezes_the_last_conv_block() -> None:
    with torch.device("meta"):
        plain = set(create_model("vgg16", in_channels=1, num_classes=4).freeze_backbone())
        ft = set(create_model("vgg16_ft", in_channels=1, num_classes=4).freeze_backbone())
    assert plain == {f"classifier.{i}.{w}" for i in (0, 3, 6) for w in ("weight", "bias")}
    last_block = {f"features.{i}.{w}" for i in (24, 26, 28) for w in ("weight", "bias")}
    assert ft == plain | last_block


def test_vgg16_ft_is_the_vgg16_network() -> None:
    # Why the forward/backward tests run only once for the two names.
    with torch.device("meta"):
        a = create_model("vgg16", in_channels=1, num_classes=4)
        b = create_model("vgg16_ft", in_channels=1, num_classes=4)
    assert type(a) is type(b)
    assert {k: v.shape for k, v in a.state_dict().items()} == {
        k: v.shape for k, v in b.state_dict().items()
    }


@pytest.mark.parametrize("arch", ["resnet50", "vgg16", "alexnet"])
def test_state_dict_matches_torchvision_layout(arch: str) -> None:
    doc = json.loads((FIXTURES / f"torchvision_{arch}_keys.json").read_text())
    expected = [(k, list(s)) for k, s in doc["entries"]]
    with torch.device("meta"):
        model = create_model(arch, in_channels=3, num_classes=1000)
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert ours == expected
    published = {"resnet50": 25_557_032, "vgg16": 138_357_544, "alexnet": 61_100_840}
    assert count_params(model) == published[arch]  # torchvision docs' num_params


def test_custom_cnn_stays_small() -> None:
    with torch.device("meta"):
        n = count_params(create_model("custom_cnn", in_channels=1, num_classes=4))
    assert 1e6 < n < 8e6


def test_vit_attention_maps_are_row_stochastic_per_layer() -> None:
    model = create_model("vit", in_channels=1, num_classes=4, image_size=64, depth=3).eval()
    with torch.no_grad():
        maps = model.attention_maps(_input(1))
    n_tokens = 1 + (64 // 16) ** 2
    assert len(maps) == 3
    for a in maps:
        assert a.shape == (2, 3, n_tokens, n_tokens)
        assert torch.allclose(a.sum(-1), torch.ones(2, 3, n_tokens), atol=1e-5)


def test_vit_position_embeddings_follow_image_size_and_interpolate() -> None:
    model = create_model("vit", in_channels=1, num_classes=2, image_size=64, depth=1).eval()
    assert model.pos_embed.shape == (1, 1 + 16, 192)
    with torch.no_grad():
        assert model(_input(1, 96)).shape == (2, 2)  # 6 x 6 patches from a 4 x 4 table
    with pytest.raises(ConfigError, match="divisible by 16"):
        model(_input(1, 70))


def test_bad_inputs_raise_clear_errors() -> None:
    alex = create_model("alexnet", in_channels=1, num_classes=2)
    with pytest.raises(ConfigError, match=r"at least 63 px.*image_size"):
        alex(_input(1, 32))
    with pytest.raises(ConfigError, match="expects B x 1 x H x W"):
        alex(_input(3))
    with pytest.raises(ConfigError, match="simple_cnn"):
        create_model("simple_cnn", in_channels=1, num_classes=2, no_such_option=1)


def test_parameter_counts_at_128px_grayscale_four_classes() -> None:
    # Sanity bounds on the sizes we document; the exact figures go in the report.
    with torch.device("meta"):
        counts = {
            n: count_params(create_model(n, in_channels=1, num_classes=4)) for n in CLASSIFIERS
        }
    assert counts["simple_cnn"] < counts["custom_cnn"] < counts["resnet50"]
    assert counts["vgg16"] == counts["vgg16_ft"]
    assert math.isclose(counts["vit"], 4.5e6, rel_tol=0.1)


@pytest.mark.parametrize("name", ["simple_cnn", "custom_cnn"])
def test_small_cnns_fit_a_separable_toy_task(name: str) -> None:
    # A bright square top-left (class 0) or bottom-right (class 1) on noise: the
    # training loss (batch statistics) must collapse within a few Adam steps.
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 32, 32, generator=g) * 0.3
    y = torch.arange(8) % 2
    for i in range(8):
        r = slice(4, 12) if y[i] == 0 else slice(20, 28)
        x[i, 0, r, r] += 0.7
    torch.manual_seed(0)
    model = create_model(name, in_channels=1, num_classes=2, dropout=0.0).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    first = None
    for _ in range(15):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
    with torch.no_grad():
        final = F.cross_entropy(model(x), y).item()
    assert final < 0.05 * first
