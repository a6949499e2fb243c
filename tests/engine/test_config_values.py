"""Config values that are valid YAML but cannot work: one line each, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from braintumor.engine.checks import check_config, check_device, check_memory
from braintumor.engine.train import train
from braintumor.errors import ConfigError
from tests.engine.test_engine_training import tiny_config


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("seed", "-1", "seed=-1"),
        ("optim.lr", "inf", "optim.lr=inf"),
        ("optim.lr", "nan", "optim.lr=nan"),
        ("trainer.accelerator", "tpu", "accelerator='tpu' is not supported"),
        ("trainer.max_minutes", "inf", "trainer.max_minutes"),
        ("data.mixup_alpha", "-0.2", "data.mixup_alpha=-0.2"),
        ("data.cutmix_alpha", "nan", "data.cutmix_alpha=nan"),
        ("data.scale_range", "1.2", "data.scale_range=1.2"),
        ("data.rotate_degrees", "nan", "data.rotate_degrees=nan"),
        ("trainer.levers", "sometimes", "use off, val or tta"),
    ],
)
def test_invalid_values_are_refused(tmp_path: Path, key: str, value: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        check_config(tiny_config(tmp_path, **{key: value}))


def test_mixing_labels_is_refused_for_segmentation(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, task="segmentation", **{"data.mixup_alpha": 0.2})
    with pytest.raises(ConfigError, match="classification only"):
        check_config(cfg)


def test_model_kwargs_the_model_rejects(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, **{"model.kwargs": "{dropout: 5}"})
    with pytest.raises(ConfigError, match="rejects model.kwargs.*fix model.kwargs"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_image_size_beyond_memory_is_refused_before_allocating(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, **{"data.image_size": "100000"})
    with pytest.raises(ConfigError, match="data.image_size=100000.*GiB"):
        check_memory(cfg, channels=1, mask_channels=0, available=64 * 2**30)
    check_memory(tiny_config(tmp_path), channels=1, mask_channels=0, available=64 * 2**30)


def test_devices() -> None:
    assert check_device(None) is None and check_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="not a device"):
        check_device("bogus")
    if not __import__("torch").cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            check_device("cuda")


@pytest.mark.parametrize(
    "argv",
    [
        ["inspect", "synthetic", "--preview", "out.txt"],
        ["inspect", "synthetic", "--seed", "-1"],
        ["explain", "RUN", "x.png", "--out", "o", "--device", "bogus"],
        [
            "pipeline",
            "--classifier",
            "A",
            "--segmenter",
            "B",
            "x.png",
            "--out",
            "o",
            "--device",
            "x",
        ],
        ["train", "--resume", "RUN", "--epochs", "3"],
        ["train", "--model", "simple_cnn"],
    ],
)
def test_cli_flags_fail_in_one_line(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from braintumor.cli import main

    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / a) if a in ("RUN", "A", "B") else a for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()
