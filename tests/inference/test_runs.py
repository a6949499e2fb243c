"""The run-folder contract: a saved run reads back identically; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from braintumor.config import load_config
from braintumor.errors import DataError
from braintumor.inference.runs import card_intensity, load_run, make_card
from braintumor.models.registry import create_model
from tests.inference._cards import card_for, write_test_run


@pytest.mark.parametrize(
    ("task", "name", "kw"),
    [("classification", "simple_cnn", {}), ("segmentation", "unet", {"n_filters": 4, "depth": 2})],
)
def test_run_round_trip_gives_identical_outputs(
    tmp_path: Path, task: str, name: str, kw: dict
) -> None:
    torch.manual_seed(0)
    model = create_model(name, in_channels=2, num_classes=3, **kw).eval()
    run = write_test_run(tmp_path, model, card_for(task, name, 2, 3, 32, **kw))
    loaded = load_run(run)
    x = torch.rand(2, 2, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))
    assert not loaded.model.training
    # The saved tensors are copies: changing the live model later changes nothing on disk.
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert not torch.equal(model(x), load_run(run).model(x))


def test_load_run_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_run(tmp_path / "nope")
    (tmp_path / "model.json").write_text("{}")
    with pytest.raises(DataError, match="model.safetensors is missing"):
        load_run(tmp_path)


def test_model_card_records_the_intensity_normalisation() -> None:
    def card(spec: str) -> dict:
        cfg = load_config(None, [f"data.spec={spec}"])
        return make_card(
            cfg, in_channels=4, num_classes=1, classes=[], mask_channels=["tumor"], crop=False
        )

    assert card("synthetic")["normalisation"]["intensity"] == "unit"
    assert card("brats:/data/brats")["normalisation"]["intensity"] == "zscore"
    old = card("brats-h5:/data/h5")
    del old["normalisation"]  # cards written before the field: inferred from the data spec
    assert card_intensity(old) == "zscore"
