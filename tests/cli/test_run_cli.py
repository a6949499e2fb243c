"""``braintumor models/train/evaluate/predict`` end to end on tiny synthetic phantoms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from braintumor.cli import app, main

RUN_FILES = (
    "config.yaml",
    "splits.json",
    "model.safetensors",
    "model.json",
    "metrics.json",
    "history.csv",
    "learning_curves.png",
)
TINY = "data.options={n_patients: 8, slices_per_patient: 3, size: 32, modalities: 1}"


def _train_args(out: Path, task: str, model: str, cache: Path) -> list[str]:
    args = [
        "train",
        "--task",
        task,
        "--model",
        model,
        "--data",
        "synthetic",
        "--out",
        str(out),
        "--set",
        TINY,
        "--set",
        "trainer.progress=false",
        "--set",
        f"data.cache_dir={cache}",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--image-size",
        "32",
        "--accelerator",
        "cpu",
        "--seed",
        "3",
    ]
    if model == "unet":
        args += ["--set", "model.kwargs.n_filters=4", "--set", "model.kwargs.depth=2"]
    return args


def _run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    import torch
    from safetensors.torch import save_file

    from braintumor.models.registry import create_model

    tmp = tmp_path_factory.mktemp("cls")
    # Start from "pretrained" weights (a 2-class model: its head does not fit and is
    # skipped) and keep the backbone frozen for the only epoch.
    torch.manual_seed(123)
    donor = create_model("simple_cnn", in_channels=1, num_classes=2)
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, tmp / "donor.safetensors")
    args = _train_args(tmp / "run", "classification", "simple_cnn", tmp / "cache")
    args += ["--pretrained", str(tmp / "donor.safetensors"), "--set", "model.freeze_epochs=1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return tmp / "run", result.output


def test_pretrained_backbone_stays_frozen(cls_run: tuple[Path, str]) -> None:
    from safetensors.torch import load_file

    from braintumor.models.registry import create_model

    run, _ = cls_run
    donor = load_file(str(run.parent / "donor.safetensors"))
    saved = load_file(str(run / "model.safetensors"))
    names = [
        n for n, _ in create_model("simple_cnn", in_channels=1, num_classes=4).named_parameters()
    ]
    backbone = [n for n in names if not n.startswith("head")]
    head = [n for n in names if n.startswith("head")]
    assert backbone and all(np.array_equal(saved[n], donor[n]) for n in backbone)
    # The head trained (and its last layer has 4 outputs, not the donor's 2).
    assert any(n in donor and not np.array_equal(saved[n], donor[n]) for n in head)
    assert saved[head[-1]].shape[0] == 4


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("seg")
    result = CliRunner().invoke(
        app, _train_args(tmp / "run", "segmentation", "unet", tmp / "cache")
    )
    assert result.exit_code == 0, result.output
    return tmp / "run"


def test_classification_train_writes_the_whole_run_folder(cls_run: tuple[Path, str]) -> None:
    run, output = cls_run
    for name in (*RUN_FILES, "confusion_matrix.png"):
        assert (run / name).is_file(), name
    assert (run / "logs" / "csv" / "metrics.csv").is_file()
    assert str(run) in output and "balanced_accuracy" in output
    card = json.loads((run / "model.json").read_text())
    assert card["name"] == "simple_cnn" and card["in_channels"] == 1
    assert card["preprocessing"] == {"image_size": 32, "channels": 1, "crop": True}
    metrics = json.loads((run / "metrics.json").read_text())
    for key in (
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "ece",
        "auroc_macro",
        "confusion_matrix",
        "per_class",
        "loss",
        "n",
        "params",
        "train_seconds",
    ):
        assert key in metrics, key
    cfg = (run / "config.yaml").read_text()
    assert "epochs: 1" in cfg and "seed: 3" in cfg  # CLI flags reached the resolved config


def test_classification_predict_prints_probabilities(
    cls_run: tuple[Path, str], tmp_path: Path
) -> None:
    run, _ = cls_run
    paths = []
    for i, size in enumerate([(40, 52), (32, 32)]):
        p = tmp_path / f"scan{i}.png"
        Image.fromarray((np.random.default_rng(i).random(size) * 255).astype(np.uint8)).save(p)
        paths.append(str(p))
    result = CliRunner().invoke(app, ["predict", str(run), *paths, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    classes = json.loads((run / "model.json").read_text())["classes"]
    assert [r["input"] for r in rows] == paths
    for r in rows:
        assert list(r["probabilities"]) == classes
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert r["prediction"] == max(r["probabilities"], key=r["probabilities"].get)


def test_existing_run_needs_force(
    cls_run: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = cls_run
    before = (run / "model.safetensors").read_bytes()
    code, _, err = _run_main(_train_args(run, "classification", "simple_cnn", run / "c"), capsys)
    assert code == 2 and "--force" in err and err.startswith("error: ")
    assert (run / "model.safetensors").read_bytes() == before


def test_segmentation_train_evaluate_predict(seg_run: Path, tmp_path: Path) -> None:
    import nibabel as nib

    for name in RUN_FILES:
        assert (seg_run / name).is_file(), name
    assert not (seg_run / "confusion_matrix.png").exists()
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", str(seg_run), "--split", "val", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["split"] == "val" and 0.0 <= metrics["dice"] <= 1.0
    assert (seg_run / "eval_val.json").is_file()

    # Another data set (a new phantom seed): evaluated as a whole, written as eval_<format>.json.
    opts = ["n_patients=2", "slices_per_patient=2", "size=32", "modalities=1", "seed=9"]
    result = runner.invoke(
        app,
        ["evaluate", str(seg_run), "--data", "synthetic", "--json"]
        + [a for o in opts for a in ("--option", o)],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["n"] == 4 and (seg_run / "eval_synthetic.json").is_file()

    png = tmp_path / "slice.png"
    Image.fromarray((np.random.default_rng(0).random((40, 56)) * 255).astype(np.uint8)).save(png)
    affine = np.diag([0.9, 0.9, 2.0, 1.0])
    affine[:3, 3] = [10.0, -5.0, 3.0]
    vol = tmp_path / "case.nii.gz"
    nib.save(
        nib.Nifti1Image(np.random.default_rng(1).random((24, 20, 5)).astype(np.float32), affine),
        vol,
    )
    out = tmp_path / "pred"
    result = runner.invoke(
        app, ["predict", str(seg_run), str(png), str(vol), "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 2
    mask_png = np.asarray(Image.open(out / "slice_mask.png"))
    assert mask_png.shape == (40, 56) and set(np.unique(mask_png)) <= {0, 255}
    assert (out / "slice_overlay.png").is_file() and (out / "case_overlay.png").is_file()
    mask_nii = nib.load(out / "case_mask.nii.gz")
    assert mask_nii.shape == (24, 20, 5)
    assert np.allclose(mask_nii.affine, affine)
    assert rows[1]["pixels"]["tumor"] == int(np.asarray(mask_nii.dataobj).sum())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "--model", "nope", "--out", "{tmp}/r"], "Valid: "),
        (["train", "--set", "data.nope=3", "--out", "{tmp}/r"], "unknown config key 'data.nope'"),
        (
            [
                "train",
                "--task",
                "segmentation",
                "--model",
                "unet",
                "--data",
                "lgg:{tmp}/missing",
                "--out",
                "{tmp}/r",
            ],
            "does not exist",
        ),
        (["evaluate", "{tmp}"], "model.json is missing"),
        (["predict", "{tmp}", "{tmp}/x.png"], "is not a run folder"),
        (
            ["train", "--task", "classification", "--model", "unet", "--out", "{tmp}/r"],
            "segmentation model",
        ),
    ],
)
def test_user_errors_exit_2_with_one_line(
    args: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run_main([a.replace("{tmp}", str(tmp_path)) for a in args], capsys)
    assert code == 2
    assert err.startswith("error: ") and expected in err and len(err.strip().splitlines()) == 1


def test_models_lists_the_registry() -> None:
    from braintumor.models.registry import list_models

    result = CliRunner().invoke(app, ["models", "--task", "segmentation"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in list_models("segmentation"):
        assert name in result.output
    assert "simple_cnn" not in result.output


def test_cv_summary_is_printed_as_mean_and_std() -> None:
    from rich.console import Console

    from braintumor.cli.tables import print_cv_summary
    from braintumor.engine.crossval import summarize_folds

    summary = {"folds": 2, "metrics": summarize_folds([{"dice": 0.5}, {"dice": 0.7}])}
    console = Console(record=True, width=120)
    print_cv_summary(console, summary)
    text = console.export_text()
    assert "2-fold" in text and "0.6000 ± 0.1414" in text


def test_pipeline_gates_with_the_segmenter_when_no_classifier_is_given(
    seg_run: Path, tmp_path: Path
) -> None:
    from braintumor.pipeline.seg_gate import ANY_PIXEL

    png = tmp_path / "slice.png"
    Image.fromarray((np.random.default_rng(0).random((40, 56)) * 255).astype(np.uint8)).save(png)
    out = tmp_path / "pipe"
    result = CliRunner().invoke(
        app, ["pipeline", str(png), "--segmenter", str(seg_run), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    # The run chose no gate on val (trainer.levers off): any predicted pixel counts.
    assert summary["classifier"] == "segmenter-area" and summary["threshold"] == ANY_PIXEL
    ev = tmp_path / "ev"
    result = CliRunner().invoke(
        app,
        ["pipeline", "--segmenter", str(seg_run), "--evaluate", "--data", "synthetic"]
        + ["--split", "val", "--out", str(ev), "--no-progress"],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((ev / "pipeline_metrics.json").read_text())
    # That gate is the segmenter alone: the same masks, gated or not.
    assert metrics["gated"]["dice"] == metrics["ungated"]["dice"]
    assert metrics["gated"]["detection"] == metrics["ungated"]["detection"]
    assert "detection bal. acc" in result.output
