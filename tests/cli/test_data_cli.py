"""The data commands: datasets, inspect, download (fake format, fake client, no network)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from braintumor.cli import main
from braintumor.cli.app import app, parse_options
from braintumor.data import FORMATS, list_formats
from braintumor.errors import ConfigError
from tests.data.test_audit import FakeFolder, make_planted_set

runner = CliRunner()


@pytest.fixture
def fake_format(monkeypatch: pytest.MonkeyPatch) -> str:
    # Registered only for the test, so registry-wide tests elsewhere never see it.
    monkeypatch.setitem(FORMATS._items, FakeFolder.name, FakeFolder)
    return FakeFolder.name


def test_datasets_lists_formats_and_downloads(fake_format: str) -> None:
    res = runner.invoke(app, ["datasets"], terminal_width=200)
    assert res.exit_code == 0, res.output
    for name in list_formats():
        assert name in res.output
    assert "test-only folder format" in res.output
    assert "brain-tumor-mri" in res.output and "kaggle.com/datasets" in res.output


def test_inspect_json_is_one_object(fake_format: str, tmp_path: Path) -> None:
    root = make_planted_set(tmp_path / "set")
    res = runner.invoke(app, ["inspect", f"{fake_format}:{root}", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)  # nothing but the JSON object on stdout
    for key in ("format", "root", "n_samples", "n_patients", "classes", "splits",
                "per_split_class", "image_sizes", "modes", "channels", "mask_channels",
                "tumor_fraction", "n_with_tumor", "duplicates_within",
                "duplicates_across_splits", "near_duplicates_within",
                "near_duplicates_across_splits", "warnings"):  # fmt: skip
        assert key in summary, key
    assert summary["duplicates_across_splits"]["test"] == 3


def test_inspect_table_no_near_and_preview(fake_format: str, tmp_path: Path) -> None:
    root = make_planted_set(tmp_path / "set")
    png = tmp_path / "grid.png"
    res = runner.invoke(
        app,
        ["inspect", f"{fake_format}:{root}", "--no-near", "--preview", str(png)],
        terminal_width=200,
    )
    assert res.exit_code == 0, res.output
    assert "Samples per split and class" in res.output
    assert "exact copies of earlier splits" in res.output
    assert "near copies" not in res.output
    assert "3 test files are byte-identical to train files" in res.output
    assert png.stat().st_size > 1000


def test_inspect_synthetic_needs_no_path() -> None:
    args = ["inspect", "synthetic", "--json", "-o", "n_patients=4", "-o", "slices_per_patient=2"]
    res = runner.invoke(app, [*args, "-o", "size=32"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["root"] is None and s["n_samples"] == 8 and s["n_patients"] == 4
    assert s["exact_method"] == "array" and s["n_unreadable"] == 0
    assert s["image_sizes"]["most_common"] == [["32x32", 8]]


def test_parse_options_yaml_values() -> None:
    assert parse_options(["target=labels", "n=3", "flag=true", "skip_empty=none"]) == {
        "target": "labels",
        "n": 3,
        "flag": True,
        "skip_empty": "none",
    }
    with pytest.raises(ConfigError, match="key=value"):
        parse_options(["target"])


def test_unknown_option_is_one_line_error(
    fake_format: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_planted_set(tmp_path / "set")
    with pytest.raises(SystemExit) as exc:
        main(["inspect", f"{fake_format}:{root}", "--option", "colour=red"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no option 'colour'" in err
    assert err.count("\n") == 1


def test_missing_folder_exit_2(fake_format: str, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["inspect", f"{fake_format}:{tmp_path / 'nope'}", "--json"])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: data folder") and "does not exist" in captured.err


@pytest.mark.slow
def test_subprocess_unknown_format_is_one_line(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "braintumor", "inspect", f"no-such-format:{tmp_path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.startswith("error: unknown data format 'no-such-format'")
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1


def test_download_unknown_name_lists_sets(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["download", "no-such-set", "--to", str(tmp_path / "x")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown downloadable data set 'no-such-set'")
    assert "Valid: brain-tumor-mri, brats2020-h5, busi, lgg, navoneel" in err


def test_download_command_with_fake_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from braintumor.data import download as dl
    from tests.data.test_download import FakeKaggle, Offline

    monkeypatch.setattr(dl, "KaggleClient", FakeKaggle)
    res = runner.invoke(app, ["download", "brain-tumor-mri", "--to", str(tmp_path / "btm")])
    assert res.exit_code == 0, res.output
    assert f"use it as: brain-tumor-mri:{tmp_path / 'btm'}" in res.stdout
    assert "expected 5712" in res.stderr
    # A second download into the now non-empty folder is refused; offline is exit 2.
    monkeypatch.setattr(dl, "KaggleClient", Offline)
    for extra in ([], ["--force"]):
        with pytest.raises(SystemExit) as exc:
            main(["download", "brain-tumor-mri", "--to", str(tmp_path / "btm"), *extra])
        assert exc.value.code == 2
    assert (tmp_path / "btm" / "Training" / "glioma" / "Tr-gl_0001.jpg").exists()


@pytest.mark.realdata
def test_real_brain_tumor_mri_json() -> None:
    from tests.conftest import shared_subdir

    root = shared_subdir("brain-tumor-mri")
    res = runner.invoke(app, ["inspect", f"brain-tumor-mri:{root}", "--json", "--no-near"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)
    assert s["n_samples"] == 6348 and s["splits"] == {"train": 5708, "test": 640}
    assert len(s["classes"]) == 4
    assert s["duplicates_across_splits"]["test"] == 101
    assert s["duplicates_within"]["train"] == 207
    assert s["warnings"][0].startswith("101 test files are byte-identical to train files")
