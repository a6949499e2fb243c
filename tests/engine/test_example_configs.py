"""The packaged example configs load, and name registered models, losses and formats."""

from __future__ import annotations

from pathlib import Path

import pytest

import braintumor
from braintumor.config import load_config
from braintumor.data.registry import FORMATS, _ensure_loaded, parse_spec
from braintumor.losses import list_losses
from braintumor.models.registry import model_entry

CONFIGS = sorted((Path(braintumor.__file__).parent / "configs").glob("*.yaml"))


def test_there_are_example_configs() -> None:
    names = {p.name for p in CONFIGS}
    # One recipe per task (each with its budget), plus the quick start.
    assert names == {
        "nickparvar_cnn.yaml",
        "lgg_seg.yaml",
        "lgg_detect.yaml",
        "brats_regions.yaml",
        "quickstart_synthetic.yaml",
    }


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_recipes_state_their_budget(path: Path) -> None:
    if path.stem == "quickstart_synthetic":
        return
    cfg = load_config(path)
    # The schedule spans the budget, so the budget (not the epoch bound) ends the run.
    assert cfg.trainer.max_minutes and cfg.optim.scheduler in ("cosine", "onecycle")
    assert f"{cfg.trainer.max_minutes:g} training minutes" in path.read_text()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_example_config_is_consistent(path: Path) -> None:
    cfg = load_config(path)
    assert model_entry(cfg.model.name).task == cfg.task
    if cfg.loss is not None:
        assert cfg.loss in list_losses()
    _ensure_loaded()
    fmt_name, _ = parse_spec(cfg.data.spec)
    fmt = FORMATS.get(fmt_name)
    assert cfg.task in fmt.tasks
    assert set(cfg.data.options) <= set(fmt.default_options)
    if cfg.task == "segmentation":
        assert cfg.data.crop is not True  # masks must map back onto the input
