"""Pretrained weights: local files, channel adaptation, head skipping, download and errors."""

from __future__ import annotations

import hashlib
import io
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from braintumor.errors import ConfigError, DataError
from braintumor.models import create_model
from braintumor.models.pretrained import adapt_first_conv, download_weights, load_pretrained

FIXTURES = Path(__file__).parent / "fixtures"


def _rgb_state(num_classes: int = 10) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return create_model("simple_cnn", in_channels=3, num_classes=num_classes).state_dict()


@pytest.mark.parametrize("channels", [1, 4])
def test_safetensors_rgb_weights_adapt_first_conv_and_skip_new_head(
    tmp_path: Path, channels: int
) -> None:
    src = _rgb_state()
    path = tmp_path / "w.safetensors"
    save_file(src, str(path))
    model = create_model("simple_cnn", in_channels=channels, num_classes=4)
    fresh_head = model.head[-1].weight.detach().clone()
    report = load_pretrained(model, path)

    own = model.state_dict()
    rgb = src["features.0.0.weight"]
    assert report.adapted == ["features.0.0.weight"]
    if channels == 1:
        assert torch.allclose(own["features.0.0.weight"], rgb.sum(1, keepdim=True))
    else:  # mean RGB filter x 3/4 on each channel: a grey image responds as in RGB
        expected = rgb.mean(1, keepdim=True).repeat(1, 4, 1, 1) * 3 / 4
        assert torch.allclose(own["features.0.0.weight"], expected)
    assert set(report.skipped) == {"head.3.weight", "head.3.bias"}
    assert torch.equal(model.head[-1].weight, fresh_head)  # new head left as initialised
    for key in ("features.2.0.weight", "features.4.1.running_var", "head.0.weight"):
        assert torch.equal(own[key], src[key])
    assert report.missing == [] and report.unexpected == []


def test_adapt_first_conv_preserves_response_to_a_grey_image() -> None:
    w = torch.randn(8, 3, 5, 5)
    grey3 = torch.full((1, 3, 9, 9), 0.7)
    for c in (1, 2, 4):
        out = torch.nn.functional.conv2d(torch.full((1, c, 9, 9), 0.7), adapt_first_conv(w, c))
        assert torch.allclose(out, torch.nn.functional.conv2d(grey3, w), atol=1e-5)


def test_pth_checkpoint_with_wrapped_prefixed_state_dict(tmp_path: Path) -> None:
    src = _rgb_state(num_classes=4)
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": {f"model.{k}": v for k, v in src.items()}}, path)
    model = create_model("simple_cnn", in_channels=3, num_classes=4, pretrained=str(path))
    for k, v in model.state_dict().items():
        assert torch.equal(v, src[k]), k


def test_full_pickle_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.mkdir, (str(marker),))

    path = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "payload": Evil()}, path)
    model = create_model("simple_cnn", in_channels=1, num_classes=2)
    with pytest.raises(DataError, match=r"evil\.pth.*state dict of tensors"):
        load_pretrained(model, path)
    assert not marker.exists()


def test_weights_of_another_architecture_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "simple.safetensors"
    save_file(_rgb_state(), str(path))
    custom = create_model("custom_cnn", in_channels=1, num_classes=4)
    with pytest.raises(DataError, match=r"simple\.safetensors.*expects"):
        load_pretrained(custom, path)
    other = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(2, 2)}, str(other))
    with pytest.raises(DataError, match="no tensor .* matches"):
        load_pretrained(custom, other)


@pytest.mark.parametrize(
    ("name", "content", "pattern"),
    [
        ("missing.pth", None, "not found"),
        ("weights.h5", b"x", "must end in"),
        ("garbage.pth", b"not a checkpoint", "cannot read"),
        ("garbage.safetensors", b"\x00\x01\x02 not safetensors", "cannot read"),
    ],
)
def test_unreadable_files_give_one_line_errors(
    tmp_path: Path, name: str, content: bytes | None, pattern: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=pattern) as info:
        load_pretrained(create_model("simple_cnn"), path)
    assert name in str(info.value) and "\n" not in str(info.value)


def test_missing_keys_are_reported_or_fatal_when_strict(tmp_path: Path) -> None:
    src = _rgb_state()
    del src["features.2.0.weight"]
    src["extra.weight"] = torch.zeros(1)
    path = tmp_path / "partial.safetensors"
    save_file(src, str(path))
    report = load_pretrained(create_model("simple_cnn", in_channels=3, num_classes=10), path)
    assert report.missing == ["features.2.0.weight"]
    assert report.unexpected == ["extra.weight"]
    assert "missing in file: features.2.0.weight" in report.summary()
    with pytest.raises(DataError, match="does not fit"):
        load_pretrained(
            create_model("simple_cnn", in_channels=3, num_classes=10), path, strict=True
        )


def test_imagenet_without_standard_weights_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no standard ImageNet weights"):
        load_pretrained(create_model("simple_cnn"), "imagenet")


class _FakeResponse(io.BytesIO):
    def __enter__(self) -> _FakeResponse:
        return self


def test_imagenet_download_is_cached_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    buf = io.BytesIO()
    torch.save(_rgb_state(), buf)
    payload = buf.getvalue()
    url = f"https://example.invalid/models/simple-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    calls: list[str] = []

    def fake_urlopen(u: str, timeout: float = 0) -> _FakeResponse:
        calls.append(u)
        return _FakeResponse(payload)

    monkeypatch.setenv("BRAINTUMOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    for _ in range(2):
        model = create_model("simple_cnn", in_channels=1, num_classes=4)
        model.imagenet_url = url
        report = load_pretrained(model, "imagenet")
        assert report.adapted == ["features.0.0.weight"]
    assert calls == [url]  # second load reused the cached file
    cached = tmp_path / "cache" / "weights" / url.rsplit("/", 1)[-1]
    assert cached.read_bytes() == payload
    assert not list(cached.parent.glob("*.part"))


def test_offline_download_tells_the_user_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(u: str, timeout: float = 0) -> _FakeResponse:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("BRAINTUMOR_CACHE", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with torch.device("meta"):
        model = create_model("resnet50", in_channels=1, num_classes=4)
    with pytest.raises(DataError) as info:
        load_pretrained(model, "imagenet")
    msg = str(info.value)
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in msg
    assert "--pretrained PATH" in msg and "\n" not in msg
    assert not list((tmp_path / "weights").iterdir())  # no half-written file left behind


def test_corrupt_download_is_detected_by_its_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", lambda u, timeout=0: _FakeResponse(b"junk"))
    with pytest.raises(DataError, match="corrupt"):
        download_weights("https://example.invalid/alexnet-owt-7be5be79.pth", tmp_path)
    assert not list(tmp_path.iterdir())


def test_torchvision_resnet50_file_loads_into_grayscale_four_class_model(tmp_path: Path) -> None:
    # A file with torchvision's key layout, written from the fixture (not from our model).
    entries = json.loads((FIXTURES / "torchvision_resnet50_keys.json").read_text())["entries"]
    torch.manual_seed(2)
    state = {
        k: torch.tensor(7) if k.endswith("num_batches_tracked") else torch.randn(shape)
        for k, shape in entries
    }
    path = tmp_path / "resnet50-tv.pth"
    torch.save(state, path)
    model = create_model("resnet50", in_channels=1, num_classes=4, pretrained=str(path))
    own = model.state_dict()
    assert torch.allclose(own["conv1.weight"], state["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(own["layer4.2.bn3.running_var"], state["layer4.2.bn3.running_var"])
    assert own["fc.weight"].shape == (4, 2048)
