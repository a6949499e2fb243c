"""Bad input as a new user hits it: one ``error:`` line naming the culprit, exit 2, no
traceback, and nothing already written is lost.

Most cases run ``braintumor.cli.main`` in-process (cheap); a few run the real console
entry in a subprocess. Every bad data set is a few tiny files written here. The run
folder that ``predict``/``evaluate``/``train --out`` meet is written through the run
API (an untrained model), so no test here trains.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from braintumor.cli import main

TINY = "data.options={n_patients: 6, slices_per_patient: 2, size: 32}"


def _png(path: Path, size: int = 24) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(path)))
    Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(path)
    return path


def _class_folders(root: Path) -> Path:
    for cls in ("no", "yes"):
        for i in range(3):
            _png(root / cls / f"{i}.png")
    return root


def _lgg(root: Path, bad_mask: bool) -> Path:
    import tifffile

    for p in range(4):
        case = root / f"TCGA_CS_49{p}0_19970222"
        case.mkdir(parents=True)
        for n in (1, 2):
            tifffile.imwrite(case / f"{case.name}_{n}.tif", np.full((32, 32, 3), 90, np.uint8))
            side = 16 if (bad_mask and p == 2 and n == 2) else 32
            mask = np.zeros((side, side), np.uint8)
            mask[4:10, 4:10] = 255
            tifffile.imwrite(case / f"{case.name}_{n}_mask.tif", mask)
    return root


def _brats(root: Path) -> Path:
    import nibabel as nib

    for k in range(4):
        case = root / f"BraTS_00{k}"
        case.mkdir(parents=True)
        for seq in ("flair", "t1", "t1ce", "t2", "seg"):
            depth = 6 if (k == 1 and seq == "t2") else 8  # one sequence of one case too short
            vol = np.zeros((16, 16, depth), np.float32)
            if seq == "seg":
                vol[4:8, 4:8, 2:5] = 1
            else:
                vol[2:14, 2:14] = 1.0 + np.arange(depth, dtype=np.float32)
            nib.save(nib.Nifti1Image(vol, np.eye(4)), case / f"{case.name}_{seq}.nii.gz")
    return root


def _fake_run(out: Path) -> Path:
    """A complete run folder (untrained 1-channel simple_cnn), written by the run API."""
    from braintumor.config import Config, save_config
    from braintumor.inference.runs import make_card, save_run_model
    from braintumor.models.registry import create_model

    cfg = Config()
    cfg.data.image_size = 32
    out.mkdir(parents=True)
    card = make_card(
        cfg, in_channels=1, num_classes=2, classes=["no", "yes"], mask_channels=[], crop=True
    )
    save_run_model(out, create_model("simple_cnn", in_channels=1, num_classes=2), card)
    save_config(cfg, out / "config.yaml")
    return out


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every bad input of this module, under one folder."""
    root = tmp_path_factory.mktemp("bad")
    (_class_folders(root / "garbage") / "yes" / "bad.jpg").write_bytes(b"not a jpeg at all")
    whole = io.BytesIO()
    Image.fromarray(np.full((64, 64), 128, np.uint8)).save(whole, format="PNG")
    data = whole.getvalue()
    (_class_folders(root / "truncated") / "no" / "cut.png").write_bytes(data[: len(data) // 2])
    (root / "empty").mkdir()
    _lgg(root / "lgg", bad_mask=True)
    _brats(root / "brats")
    (root / "invalid.yaml").write_text("data: [unclosed\n  foo: : :\n")
    (root / "badkey.yaml").write_text("data:\n  imagesize: 32\n")
    (root / "notarun").mkdir()
    (root / "a_file.txt").write_text("not a folder\n")
    _png(root / "in" / "ok.png")
    (root / "in" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (root / "in" / "scan.gif").write_bytes(b"GIF89a")
    run = _fake_run(root / "run")
    broken = _fake_run(root / "run_badcard")
    (broken / "model.json").write_text("{not json")
    truncated = _fake_run(root / "run_truncated")
    weights = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    assert run.is_dir()
    return root


def _train(bad: Path, data: str, *extra: str, out: Path | None = None) -> list[str]:
    tiny = ["--set", TINY] if data == "synthetic" else []
    return [
        "train", "--data", data, "--out", str(out or bad / "runs" / "new"), "--epochs", "1",
        "--image-size", "32", "--accelerator", "cpu", "--set", "trainer.progress=false",
        "--set", f"data.cache_dir={bad / 'cache'}", *tiny, *extra,
    ]  # fmt: skip


def _assert_one_error_line(code: int | str | None, out: str, err: str, names: str) -> None:
    assert code == 2, (code, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert names in lines[0], (names, lines[0])
    assert "Traceback" not in out + err


def _run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[object, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out, err = capsys.readouterr()
    return exc.value.code, out, err


SEG = ("--task", "segmentation", "--model", "unet", "--set", "model.kwargs.n_filters=4")

# (id, args built from the bad-data folder B, text the error line must contain)
Case = tuple[str, Callable[[Path], list[str]], str]
CASES: list[Case] = [
    ("missing-folder", lambda B: _train(B, f"image-folder:{B}/nope"), "{B}/nope"),
    ("unknown-format", lambda B: _train(B, "dicomfolder:/x"), "'dicomfolder'"),
    ("garbage-jpg", lambda B: _train(B, f"image-folder:{B}/garbage"), "{B}/garbage/yes/bad.jpg"),
    ("truncated-png", lambda B: _train(B, f"image-folder:{B}/truncated"), "cut.png"),
    ("empty-set", lambda B: _train(B, f"image-folder:{B}/empty"), "{B}/empty"),
    ("lgg-mask-size", lambda B: _train(B, f"lgg:{B}/lgg", *SEG), "_2_mask.tif is 16x16"),
    ("brats-shapes", lambda B: _train(B, f"brats:{B}/brats", *SEG), "BraTS_001_t2.nii.gz"),
    ("unknown-model", lambda B: _train(B, "synthetic", "--model", "resnet51"), "'resnet51'"),
    ("unknown-loss", lambda B: _train(B, "synthetic", "--loss", "dise"), "'dise'"),
    ("wrong-task", lambda B: _train(B, "synthetic", "--model", "unet"), "'unet'"),
    ("bad-key", lambda B: _train(B, "synthetic", "--set", "data.imagesize=3"), "data.imagesize"),
    ("bad-value", lambda B: _train(B, "synthetic", "--set", "trainer.epochs=many"), "epochs"),
    ("bad-yaml-value", lambda B: _train(B, "synthetic", "--set", "data.options={a: [}"), "options"),
    ("no-config", lambda B: _train(B, "synthetic", "--config", f"{B}/nope.yaml"), "nope.yaml"),
    ("invalid-yaml", lambda B: _train(B, "synthetic", "--config", f"{B}/invalid.yaml"), "line 2"),
    ("yaml-bad-key", lambda B: _train(B, "synthetic", "--config", f"{B}/badkey.yaml"), "imagesize"),
    ("unet-size", lambda B: _train(B, "synthetic", *SEG, "--image-size", "30"), "image_size"),
    ("alexnet-size", lambda B: _train(B, "synthetic", "--model", "alexnet"), "image_size"),
    ("negative-lr", lambda B: _train(B, "synthetic", "--lr", "-1"), "optim.lr"),
    ("bad-precision", lambda B: _train(B, "synthetic", "--precision", "8-bit"), "'8-bit'"),
    ("bad-accelerator", lambda B: _train(B, "synthetic", "--accelerator", "tpu2"), "'tpu2'"),
    ("bad-devices", lambda B: _train(B, "synthetic", "--devices", "0,a"), "trainer.devices"),
    ("out-is-file", lambda B: _train(B, "synthetic", out=B / "a_file.txt"), "a_file.txt"),
    ("out-under-file", lambda B: _train(B, "synthetic", out=B / "a_file.txt" / "r"), "a_file.txt"),
    ("evaluate-not-a-run", lambda B: ["evaluate", f"{B}/notarun"], "{B}/notarun"),
    ("evaluate-bad-card", lambda B: ["evaluate", f"{B}/run_badcard"], "run_badcard/model.json"),
    ("evaluate-cut-weights", lambda B: ["evaluate", f"{B}/run_truncated"], "model.safetensors"),
    ("predict-corrupt", lambda B: ["predict", f"{B}/run", f"{B}/in/corrupt.png"], "corrupt.png"),
    ("predict-gif", lambda B: ["predict", f"{B}/run", f"{B}/in/scan.gif"], "scan.gif"),
    ("predict-missing", lambda B: ["predict", f"{B}/run", f"{B}/in/nope.png"], "nope.png"),
    ("predict-folder", lambda B: ["predict", f"{B}/run", f"{B}/in"], "{B}/in"),
    (
        "predict-out-file",
        lambda B: ["predict", f"{B}/run", f"{B}/in/ok.png", "--out", f"{B}/a_file.txt"],
        "a_file.txt",
    ),
    ("predict-run-is-file", lambda B: ["predict", f"{B}/a_file.txt", f"{B}/in/ok.png"], "a_file"),
    ("export-not-a-run", lambda B: ["export", f"{B}/notarun"], "{B}/notarun"),
    ("inspect-missing", lambda B: ["inspect", f"image-folder:{B}/nope"], "{B}/nope"),
    ("inspect-empty", lambda B: ["inspect", f"image-folder:{B}/empty"], "{B}/empty"),
    ("inspect-unknown-option", lambda B: ["inspect", "synthetic", "-o", "sise=3"], "'sise'"),
]


@pytest.mark.parametrize(("args", "names"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line(
    bad: Path, capsys: pytest.CaptureFixture[str], args: Callable[[Path], list[str]], names: str
) -> None:
    code, out, err = _run_main(args(bad), capsys)
    _assert_one_error_line(code, out, err, names.format(B=bad))


SUBPROCESS_CASES: list[Case] = [
    ("missing-folder", lambda B: ["inspect", f"image-folder:{B}/nope"], "{B}/nope"),
    ("invalid-yaml", lambda B: _train(B, "synthetic", "--config", f"{B}/invalid.yaml"), "line 2"),
    ("predict-corrupt", lambda B: ["predict", f"{B}/run", f"{B}/in/corrupt.png"], "corrupt.png"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "names"), [c[1:] for c in SUBPROCESS_CASES], ids=[c[0] for c in SUBPROCESS_CASES]
)
def test_console_entry_prints_one_error_line(
    bad: Path, args: Callable[[Path], list[str]], names: str
) -> None:
    env = {**os.environ, "BRAINTUMOR_CACHE": str(bad / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "braintumor", *args(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    _assert_one_error_line(proc.returncode, proc.stdout, proc.stderr, names.format(B=bad))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "extra",
    [
        ("--data", "image-folder:{B}/garbage"),  # fails while decoding the data
        ("--data", "synthetic", "--set", TINY, *SEG, "--image-size", "30"),  # size for a U-Net
        ("--data", "synthetic", "--set", TINY, "--precision", "8-bit"),  # Lightning refuses it
    ],
    ids=["corrupt-data", "model-size", "trainer-setting"],
)
def test_failed_force_retrain_keeps_the_old_run(
    tmp_path: Path, bad: Path, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...]
) -> None:
    run = _fake_run(tmp_path / "run")
    (run / "notes.txt").write_text("mine\n")
    before = _snapshot(run)
    args = [a.replace("{B}", str(bad)) for a in extra]
    code, out, err = _run_main(
        ["train", "--out", str(run), "--force", "--epochs", "1", "--accelerator", "cpu",
         "--image-size", "32", "--set", "trainer.progress=false", *args],
        capsys,
    )  # fmt: skip
    assert code == 2 and err.startswith("error: "), err
    assert _snapshot(run) == before


def test_existing_run_is_refused_and_left_intact(
    bad: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(bad / "run")
    code, out, err = _run_main(_train(bad, "synthetic", out=bad / "run"), capsys)
    _assert_one_error_line(code, out, err, "--force")
    assert _snapshot(bad / "run") == before


def test_interrupted_weight_write_keeps_the_old_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safetensors.torch

    from braintumor.inference.runs import load_run, save_run_model
    from braintumor.models.registry import create_model

    run = _fake_run(tmp_path / "run")
    good = (run / "model.safetensors").read_bytes()
    card = json.loads((run / "model.json").read_text())

    def dies_halfway(state: dict, filename: str, metadata: dict | None = None) -> None:
        Path(filename).write_bytes(good[: len(good) // 3])
        raise OSError(28, "No space left on device", filename)

    monkeypatch.setattr(safetensors.torch, "save_file", dies_halfway)
    with pytest.raises(OSError, match="No space"):
        save_run_model(run, create_model("simple_cnn", in_channels=1, num_classes=2), card)
    assert (run / "model.safetensors").read_bytes() == good
    assert sorted(p.name for p in run.iterdir()) == [
        "config.yaml",
        "model.json",
        "model.safetensors",
    ]
    monkeypatch.undo()
    load_run(run)  # still a loadable run


def test_interrupted_json_write_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from braintumor.inference.runs import write_json

    target = write_json(tmp_path / "metrics.json", {"accuracy": 0.9})
    good = target.read_bytes()

    def fails(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error", str(src))

    monkeypatch.setattr(os, "replace", fails)
    with pytest.raises(OSError):
        write_json(target, {"accuracy": 0.1})
    assert target.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left


def test_trainer_drops_only_the_litlogger_advert(tmp_path: Path) -> None:
    from braintumor.config import Config
    from braintumor.engine.trainer import build_trainer

    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    handler, level = Collect(level=logging.INFO), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        cfg = Config()
        cfg.trainer.accelerator, cfg.trainer.progress = "cpu", False
        build_trainer(cfg, tmp_path, [])
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert any("GPU available" in r for r in records), records  # other messages still pass
    assert not any("litlogger" in r.lower() for r in records), records
