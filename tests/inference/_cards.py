"""A model card and a run folder for tests, built the way training builds them."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from braintumor.config import Config, save_config
from braintumor.inference.runs import make_card, save_run_model


def card_for(
    task: str,
    name: str,
    in_ch: int,
    n_out: int,
    size: int,
    precision: str = "32-true",
    **kw: object,
) -> dict:
    """The card of a run trained in ``precision`` (default fp32: the auto runtime's case;
    the training default, ``auto``, is bf16 on a CPU that has it)."""
    cfg = Config(task=task)
    cfg.model.name, cfg.model.kwargs, cfg.data.image_size = name, dict(kw), size
    cfg.trainer.precision = precision
    names = [f"c{i}" for i in range(n_out)]
    return make_card(
        cfg,
        in_channels=in_ch,
        num_classes=n_out,
        classes=names if task == "classification" else [],
        mask_channels=names if task == "segmentation" else [],
        crop=task == "classification",
    )


def write_test_run(tmp_path: Path, model: nn.Module, card: dict) -> Path:
    save_run_model(tmp_path, model, card)
    cfg = Config(task=card["task"])
    cfg.model.name = card["name"]
    save_config(cfg, tmp_path / "config.yaml")
    return tmp_path


class Recorder(nn.Module):
    """Returns input ``channel`` as the logit map (x * 20 - 10) and keeps every input."""

    def __init__(self, channel: int = 0) -> None:
        super().__init__()
        self.channel = channel
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return x[:, self.channel : self.channel + 1] * 20 - 10
