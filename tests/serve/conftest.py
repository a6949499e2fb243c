"""Tiny run folders (one per task), written with the engine's own run writer.

The serving and export code only depends on the run folder contract (config.yaml,
model.json, model.safetensors), so the runs are written directly with
:func:`braintumor.inference.runs.save_run_model` from a freshly initialised model:
milliseconds instead of a training loop, and the same files ``train`` writes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from braintumor.config import Config, save_config
from braintumor.inference import runs
from braintumor.models import create_model

TINY_KWARGS = {
    "classification": ("simple_cnn", {"widths": [4, 8, 8], "hidden": 8}),
    "segmentation": ("unet", {"n_filters": 4, "depth": 2}),
}


def make_tiny_run(task: str, out: Path, image_size: int = 32, in_channels: int = 1) -> Path:
    """Write a run folder for an untrained tiny model of ``task``."""
    name, kwargs = TINY_KWARGS[task]
    cfg = Config(task=task)
    cfg.data.image_size = image_size
    cfg.model.name, cfg.model.kwargs = name, dict(kwargs)
    classes = ["no_tumor", "tumor"] if task == "classification" else []
    masks = ["tumor"] if task == "segmentation" else []
    num_classes = len(classes) if task == "classification" else len(masks)
    torch.manual_seed(0)
    model = create_model(name, in_channels=in_channels, num_classes=num_classes, **kwargs)
    if task == "segmentation":
        # An untrained U-Net puts every pixel on one side of the threshold; centring the
        # head's bias on the median logit makes the mask partial, so that area and box
        # in the tests are not trivially "all" or "nothing".
        with torch.no_grad():
            logits = model.eval()(torch.rand(1, in_channels, image_size, image_size))
            model.head.bias -= logits.median()
    card = runs.make_card(
        cfg,
        in_channels=in_channels,
        num_classes=num_classes,
        classes=classes,
        mask_channels=masks,
        crop=task == "classification",
    )
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / runs.CONFIG_FILE)
    runs.save_run_model(out, model, card)
    return out


@pytest.fixture(scope="session")
def cls_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_run("classification", tmp_path_factory.mktemp("runs") / "cls_run")


@pytest.fixture(scope="session")
def seg_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_run("segmentation", tmp_path_factory.mktemp("runs") / "seg_run")
