"""Typed config: YAML files and ``--set`` overrides reach the right types."""

from __future__ import annotations

from pathlib import Path

import pytest

from braintumor.config import load_config
from braintumor.errors import ConfigError


def test_set_keeps_a_string_field_as_typed() -> None:
    # YAML 1.1 would read off / on / yes / no as booleans; a string field keeps the word.
    cfg = load_config(None, ["trainer.levers=off", "model.name=unet", "loss=none"])
    assert cfg.trainer.levers == "off"
    assert cfg.model.name == "unet"
    assert cfg.loss is None  # str | None: none / null still mean "unset"


def test_yaml_file_off_reads_as_the_word_for_a_string_field(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("trainer:\n  levers: off\n  progress: off\n")
    cfg = load_config(path)
    assert cfg.trainer.levers == "off"
    assert cfg.trainer.progress is False  # a bool field still reads off as False


def test_set_parses_numbers_bools_and_mappings() -> None:
    cfg = load_config(
        None, ["trainer.max_minutes=2.5", "trainer.progress=false", "data.options={n: 8}"]
    )
    assert cfg.trainer.max_minutes == 2.5
    assert cfg.trainer.progress is False
    assert cfg.data.options == {"n": 8}


def test_bad_key_and_bad_value_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="unknown config key 'trainer.nope'"):
        load_config(None, ["trainer.nope=1"])
    with pytest.raises(ConfigError, match="cannot read 'abc' as int"):
        load_config(None, ["trainer.epochs=abc"])
