"""Explanations: heat maps at the input's size, on the right pixels, for every method."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from braintumor.config import Config, save_config
from braintumor.errors import ConfigError
from braintumor.explain import explain_image, explain_inputs, to_input_grid
from braintumor.inference.predictor import Predictor
from braintumor.inference.runs import make_card, save_run_model
from braintumor.models import create_model

CLASSES = ["notumor", "tumor"]


class BrightnessNet(nn.Module):
    """Logit of "tumor" = mean intensity: Grad-CAM of "tumor" must be the image itself."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        nn.init.ones_(self.conv.weight)
        self.fc = nn.Linear(1, 2, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[-1.0], [1.0]]))

    def cam_layer(self) -> nn.Module:
        return self.conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def _card(name: str, task: str = "classification", size: int = 32, crop: bool = False) -> dict:
    return {
        "name": name,
        "task": task,
        "classes": CLASSES,
        "mask_channels": ["tumor"],
        "preprocessing": {"image_size": size, "channels": 1, "crop": crop},
        "threshold": 0.5,
        "data": {"spec": "synthetic"},
    }


def _blob_image(h: int = 40, w: int = 56) -> np.ndarray:
    img = np.zeros((1, h, w), np.float32)
    img[0, 5:35, 4:52] = 0.2  # a "head"
    img[0, 10:18, 36:46] = 1.0  # a bright "tumor" in the upper right
    return img


def test_gradcam_points_at_the_evidence_on_the_input_grid() -> None:
    img = _blob_image()
    pred = Predictor(BrightnessNet(), _card("brightness"), "cpu")
    ex = explain_image(pred, img, target="tumor")
    assert ex.method == "gradcam" and ex.label == "tumor"
    assert ex.heat.shape == img.shape[-2:]  # the input's size, not the model's 32 x 32
    y, x = np.unravel_index(np.argmax(ex.heat), ex.heat.shape)
    assert 10 <= y < 18 and 36 <= x < 46
    assert ex.heat[img[0] == 0].max() < 0.2  # background stays cold


def test_heat_is_placed_back_into_the_crop() -> None:
    img = np.zeros((1, 60, 60), np.float32)
    img[0, 20:50, 10:40] = 0.5 + 0.1 * np.random.default_rng(0).random((30, 30))
    heat = to_input_grid(np.ones((16, 16), np.float32), img, crop=True)
    assert heat.shape == (60, 60)
    assert heat[0:10].max() == 0 and heat[:, 55:].max() == 0  # margins cropped away: cold
    assert heat[25:45, 15:35].min() > 0.99


@pytest.mark.parametrize(
    ("name", "task", "kwargs", "method"),
    [
        ("simple_cnn", "classification", {}, "gradcam"),
        ("vit", "classification", {"image_size": 32, "depth": 2}, "rollout"),
        ("attention_unet", "segmentation", {"n_filters": 4, "depth": 2}, "gates"),
    ],
)
def test_every_method_gives_a_map_of_the_input_size(
    name: str, task: str, kwargs: dict, method: str
) -> None:
    torch.manual_seed(0)
    model = create_model(
        name, in_channels=1, num_classes=2 if task == "classification" else 1, **kwargs
    )
    card = {**_card(name, task), "kwargs": kwargs}
    ex = explain_image(Predictor(model, card, "cpu"), _blob_image(37, 45))
    assert ex.method == method
    assert ex.heat.shape == (37, 45) and ex.heat.dtype == np.float32
    assert 0.0 <= ex.heat.min() and ex.heat.max() <= 1.0 and ex.heat.max() > 0


def test_unsupported_models_are_refused() -> None:
    model = create_model("unet", in_channels=1, num_classes=1, n_filters=4, depth=2)
    with pytest.raises(ConfigError, match="no attention gates"):
        explain_image(Predictor(model, _card("unet", "segmentation"), "cpu"), _blob_image())
    pred = Predictor(BrightnessNet(), _card("brightness"), "cpu")
    with pytest.raises(ConfigError, match="not a class of this run"):
        explain_image(pred, _blob_image(), target="glioma")


def test_gradcam_layer_choice_changes_the_map_resolution() -> None:
    from braintumor.explain.maps import grad_cam

    torch.manual_seed(0)
    model = create_model("custom_cnn", in_channels=1, num_classes=2)
    x = torch.rand(1, 1, 128, 128)
    seen: dict[str, tuple[int, ...]] = {}
    for name in (None, "features.4"):  # default: last block (4 x 4); features.4: 8 x 8
        layer = model.cam_layer() if name is None else dict(model.named_modules())[name]
        h = layer.register_forward_hook(lambda _m, _i, o, n=name: seen.__setitem__(n, o.shape))
        res = grad_cam(model, x, 1, layer=name)
        h.remove()
        assert res["heat"].shape == (128, 128) and res["target"] == 1
    assert seen[None][-1] == 4 and seen["features.4"][-1] == 8
    with pytest.raises(ConfigError, match="conv layers: features.0.0"):
        grad_cam(model, x, 1, layer="features.99")
    with pytest.raises(ConfigError, match="no spatial feature map"):
        grad_cam(model, x, 1, layer="head.0")
    pred = Predictor(
        create_model("vit", in_channels=1, num_classes=2, image_size=32, depth=1),
        {**_card("vit"), "kwargs": {}},
        "cpu",
    )
    with pytest.raises(ConfigError, match="Grad-CAM only"):
        explain_image(pred, _blob_image(), layer="blocks.0")


def _write_run(tmp_path: Path) -> Path:
    cfg = Config()
    cfg.data.image_size, cfg.data.channels = 32, 1
    model = create_model("simple_cnn", in_channels=1, num_classes=2)
    card: dict[str, Any] = make_card(
        cfg, in_channels=1, num_classes=2, classes=CLASSES, mask_channels=[], crop=True
    )
    run = tmp_path / "run"
    save_run_model(run, model, card)
    save_config(cfg, run / "config.yaml")
    return run


def test_explain_inputs_writes_overlays_at_input_size(tmp_path: Path) -> None:
    run = _write_run(tmp_path)
    arr = (_blob_image(41, 29)[0] * 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "slice.png")
    written = explain_inputs(run, [tmp_path / "slice.png"], tmp_path / "out")
    assert [p.name for p in written] == ["slice_gradcam.png"]
    with Image.open(written[0]) as im:
        assert im.size == (29, 41) and im.mode == "RGB"
    assert (tmp_path / "out" / "explanations.json").is_file()
    with pytest.raises(ConfigError, match="not a layer of SimpleCNN"):
        explain_inputs(run, [tmp_path / "slice.png"], tmp_path / "out2", layer="nope")
    assert not (tmp_path / "out2").exists()  # refused before anything was written


def test_explain_a_volume_slice(tmp_path: Path) -> None:
    from braintumor.data.io import write_nifti

    run = _write_run(tmp_path)
    vol = np.zeros((30, 22, 5), np.float32)  # X x Y x Z
    vol[5:25, 4:18] = 0.3
    vol[8:12, 6:10, 2] = 1.0
    write_nifti(tmp_path / "vol.nii.gz", vol, np.eye(4))
    (png,) = explain_inputs(run, [tmp_path / "vol.nii.gz"], tmp_path / "out", slice_index=2)
    assert png.name == "vol_z2_gradcam.png"
    with Image.open(png) as im:
        assert im.size == (30, 22)  # display slice: rows along Y, columns along X
    with pytest.raises(ConfigError, match="--slice 9 is outside"):
        explain_inputs(run, [tmp_path / "vol.nii.gz"], tmp_path / "out", slice_index=9)
