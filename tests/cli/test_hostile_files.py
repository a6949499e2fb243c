"""Hostile files through the CLI: one ``error:`` line, exit 2, no empty --out left."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile

from braintumor.cli import main
from tests.data._hostile import nifti_with_affine_row, png_bomb, tiff_with_size
from tests.serve.conftest import make_tiny_run

_PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00"
    b"\x00\x00:~\x9bU\x00\x00\x00\nIDATx\x9cc`\x00\x00\x00\x02\x00\x01H\xaf\xa4q\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)  # a valid 1 x 1 grayscale PNG


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    make_tiny_run("segmentation", root / "seg")
    make_tiny_run("classification", root / "cls")
    tiff_with_size(root / "zero.tif", 0, 0)
    png_bomb(root / "bomb.png", 9000, 9000)
    tifffile.imwrite(root / "complex.tif", np.ones((16, 16), np.complex64))
    nifti_with_affine_row(root / "singular.nii.gz", [0.0, 0.0, 0.0, 0.0], (16, 16, 4))
    nifti_with_affine_row(root / "nan_affine.nii.gz", [np.nan, 0.0, 0.0, 0.0], (16, 16, 4))
    nan = np.full((16, 16, 4), np.nan, np.float32)
    nib.save(nib.Nifti1Image(nan, np.eye(4)), root / "all_nan.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((16, 16, 4), np.complex64), np.eye(4)), root / "c.nii.gz")
    edited = make_tiny_run("classification", root / "edited")
    card = json.loads((edited / "model.json").read_text())
    card["classes"] = ["only_one"]
    (edited / "model.json").write_text(json.dumps(card))
    return root


CASES = [
    ("zero-tiff", "predict cls zero.tif", "empty image"),
    ("png-bomb", "predict cls bomb.png", "exceeds the limit"),
    ("complex-tiff", "predict cls complex.tif", "complex values"),
    ("singular-affine", "predict seg singular.nii.gz --out out", "singular"),
    ("nan-affine", "predict seg nan_affine.nii.gz --out out", "not finite"),
    ("all-nan", "predict seg all_nan.nii.gz --out out", "NaN or infinite"),
    ("complex-nifti", "predict seg c.nii.gz --out out", "complex values"),
    ("pipeline-singular", "pipeline --classifier cls --segmenter seg singular.nii.gz --out out",
     "singular"),
    ("edited-card", "predict edited zero.tif", "num_classes is 2"),
    ("evaluate-option", "evaluate cls --option size=4", "--option applies to the data set"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_file_gives_one_error_line(
    hostile: Path, capsys: pytest.CaptureFixture[str], args: str, message: str
) -> None:
    argv = [str(hostile / a) if (hostile / a).exists() or a == "out" else a for a in args.split()]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert exc.value.code == 2, (out, err)
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not (hostile / "out").exists()  # no empty --out folder left behind


def test_inspect_survives_bombs_in_a_folder(
    hostile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = hostile / "set"
    for label in ("yes", "no"):
        (folder / label).mkdir(parents=True, exist_ok=True)
    png_bomb(folder / "yes" / "bomb.png", 30000, 30000, rows=1)  # over Pillow's own limit
    tiff_with_size(folder / "yes" / "big.tif", 30000, 30000)
    (folder / "no" / "ok.png").write_bytes(_PNG)
    main(["inspect", f"image-folder:{folder}"])
    out, err = capsys.readouterr()
    assert "2 samples could not be read" in " ".join((out + err).split())
    assert "Traceback" not in out + err
