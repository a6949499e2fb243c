"""CLI errors of the pipeline commands: one line, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from braintumor.cli import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give INPUT files/folders, or --evaluate"),
        (["--evaluate"], "--evaluate needs --data"),
        (["--data", "synthetic"], "--data is only used with --evaluate"),
        (["x.png", "--data-option", "oops"], None),  # no --evaluate: reported first
        (["--evaluate", "--data", "synthetic", "--data-option", "a=["], "not valid YAML"),
        (["--evaluate", "--data", "synthetic", "-o", "n_patients"], "use key=value"),
    ],
)
def test_pipeline_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str | None
) -> None:
    base = [
        "pipeline",
        "--classifier",
        str(tmp_path / "c"),
        "--segmenter",
        str(tmp_path / "s"),
        "--out",
        str(tmp_path / "o"),
    ]
    with pytest.raises(SystemExit) as exc:
        main(base + args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    if message:
        assert message in err


def test_missing_run_folder_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "explain",
                str(tmp_path / "nope"),
                str(tmp_path / "a.png"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
    assert exc.value.code == 2
    assert "run folder" in capsys.readouterr().err
