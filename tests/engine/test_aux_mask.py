"""The mask as a classifier's auxiliary target (``model.aux_mask``, engine/aux_mask.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from braintumor.engine.aux_mask import AuxMaskHead, cell_targets
from braintumor.engine.checks import check_config
from braintumor.engine.train import train
from braintumor.errors import ConfigError
from braintumor.inference.predictor import Predictor
from braintumor.models.registry import create_model
from tests.engine.test_engine_training import tiny_config


def test_cell_targets_mark_only_the_cells_holding_tumour() -> None:
    mask = torch.zeros(2, 1, 32, 32)
    mask[0, 0, 1:3, 30] = 1  # a 2-pixel tumour in the top-right cell
    cells = cell_targets(mask, (4, 4))
    assert cells.shape == (2, 1, 4, 4)
    assert cells[0, 0, 0, 3] == 1 and cells[0].sum() == 1  # it survives the pooling
    assert cells[1].sum() == 0  # an empty slice has no tumour cell
    # Any channel counts (BraTS sub-regions).
    multi = torch.zeros(1, 3, 32, 32)
    multi[0, 2, 20, 5] = 1
    assert cell_targets(multi, (4, 4))[0, 0, 2, 0] == 1


def test_aux_loss_trains_the_backbone_and_its_head() -> None:
    model = create_model("custom_cnn", in_channels=3, num_classes=2)
    aux = AuxMaskHead(model, in_channels=3, image_size=128, weight=0.5)
    with pytest.raises(RuntimeError, match="before a forward pass"):
        aux.loss(torch.zeros(2, 1, 128, 128))
    x, mask = torch.randn(2, 3, 128, 128), torch.zeros(2, 1, 128, 128)
    mask[0, 0, 40:60, 40:60] = 1
    model(x)
    loss = aux.loss(mask)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    first = model.get_parameter("features.0.0.weight")
    assert first.grad is not None and first.grad.abs().sum() > 0  # reaches the first conv
    assert all(p.grad is not None for p in aux.head.parameters())
    # The classifier's own weights do not change: the head is not one of its parameters.
    assert not any(n.startswith("aux") for n, _ in model.named_parameters())
    aux.remove()
    model(x)
    with pytest.raises(RuntimeError):  # no hook any more: nothing kept
        aux.loss(mask)


def test_aux_mask_refuses_a_model_without_a_feature_map() -> None:
    flat = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 2))
    with pytest.raises(ConfigError, match=r"model.aux_mask needs a classifier with a conv"):
        AuxMaskHead(flat, in_channels=1, image_size=32, weight=0.5)
    # The ViT's token grid is a feature map: it gets a head too.
    vit = create_model("vit", in_channels=1, num_classes=2, image_size=32)
    head = AuxMaskHead(vit, in_channels=1, image_size=32, weight=0.5)
    vit(torch.randn(1, 1, 32, 32))
    assert torch.isfinite(head.loss(torch.ones(1, 1, 32, 32)))


def test_training_with_aux_mask_saves_the_plain_classifier(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, **{"model.aux_mask": 0.5, "trainer.epochs": 2})
    run = train(cfg, tmp_path / "run")
    history = (run / "history.csv").read_text().splitlines()
    assert "train_aux_loss" in history[0] and len(history) == 3
    weights = load_file(str(run / "model.safetensors"))
    plain = create_model("simple_cnn", in_channels=1, num_classes=4)
    assert set(weights) == set(plain.state_dict())  # no head weights in the run
    assert json.loads((run / "metrics.json").read_text())["accuracy"] >= 0
    probs = Predictor.from_run(run, device="cpu").predict_images([torch.rand(1, 32, 32).numpy()])
    assert probs[0].shape == (4,)


@pytest.mark.parametrize(
    ("sets", "match"),
    [
        ({"model.aux_mask": "-1"}, "model.aux_mask=-1"),
        ({"model.aux_mask": "nan"}, "model.aux_mask=nan"),
        ({"task": "segmentation", "model.aux_mask": "0.5"}, "classification only"),
    ],
)
def test_aux_mask_values_that_cannot_work(tmp_path: Path, sets: dict, match: str) -> None:
    task = sets.pop("task", "classification")
    with pytest.raises(ConfigError, match=match):
        check_config(tiny_config(tmp_path, task=task, **sets))


def test_aux_mask_with_mixing_is_refused_before_training(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, **{"model.aux_mask": 0.5, "data.mixup_alpha": 0.2})
    with pytest.raises(ConfigError, match="does not combine"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_aux_mask_on_a_data_set_without_masks_names_the_fix(tmp_path: Path) -> None:
    from tests.data._writers import head_image, save_png

    for i in range(6):
        save_png(tmp_path / "data" / ("yes" if i % 2 else "no") / f"{i}.png", head_image(32, 32))
    cfg = tiny_config(
        tmp_path,
        **{"model.aux_mask": 0.5, "data.spec": f"image-folder:{tmp_path / 'data'}"},
    )
    cfg.data.options = {}
    with pytest.raises(ConfigError, match="format 'image-folder' has none"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()
