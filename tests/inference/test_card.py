"""Hand-edited model cards are refused with one line naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from braintumor.errors import DataError
from braintumor.inference.card import check_card
from braintumor.inference.runs import load_run
from tests.serve.conftest import make_tiny_run


@pytest.fixture(scope="module")
def card() -> dict[str, Any]:
    return {
        "name": "simple_cnn",
        "task": "classification",
        "kwargs": {},
        "in_channels": 1,
        "num_classes": 2,
        "classes": ["no", "yes"],
        "mask_channels": [],
        "preprocessing": {"image_size": 32, "channels": 1, "crop": True},
        "data": {"spec": "synthetic", "options": {}},
        "threshold": 0.5,
    }


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"classes": ["no"]}, "classes names 1 outputs but num_classes is 2"),
        ({"preprocessing": {"image_size": "32", "channels": 1, "crop": True}}, "image_size"),
        ({"task": "segmentation"}, "is a classification model"),
        ({"task": "detection"}, "task is 'detection'"),
        ({"in_channels": True}, "in_channels"),
        ({"num_classes": -3}, "num_classes"),
        ({"threshold": "high"}, "threshold"),
        ({"kwargs": [1, 2]}, "kwargs"),
        ({"classes": ["a", "a"]}, "repeats"),
        ({"preprocessing": {"image_size": 10**6, "channels": 1, "crop": True}}, "outside"),
        ({"in_channels": 3}, "differs from in_channels"),
        (
            {"preprocessing": {"image_size": 32, "channels": 1, "crop": True, "neighbours": -1}},
            "neighbours",
        ),
        ({"inference": {"min_component_voxels": 40, "keep_largest": "yes"}}, "keep_largest"),
        ({"inference": {"min_component_voxels": -1}}, "min_component_voxels"),
    ],
)
def test_edited_card_is_refused(card: dict[str, Any], edit: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match="model.json") as err:
        check_card({**card, **edit}, Path("run/model.json"))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_valid_card_passes(card: dict[str, Any]) -> None:
    assert check_card(dict(card), Path("model.json")) == card


def test_card_of_a_2p5d_run_passes(card: dict[str, Any]) -> None:
    # data.neighbours=1: the image's channel plus the FLAIR of the slices below and above.
    pre = {"image_size": 32, "channels": 1, "crop": True, "neighbours": 1}
    edited = {**card, "in_channels": 3, "preprocessing": pre}
    assert check_card(dict(edited), Path("model.json")) == edited


def test_load_run_validates_the_card(tmp_path: Path) -> None:
    run = make_tiny_run("segmentation", tmp_path / "seg")
    data = json.loads((run / "model.json").read_text())
    data["mask_channels"] = []  # one output, no name for it
    (run / "model.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="mask_channels names 0 outputs"):
        load_run(run)
    data["mask_channels"], data["kwargs"] = ["tumor"], {"depth": "deep"}
    (run / "model.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="model.json"):
        load_run(run)
