"""Property-based fuzzing of every reader and of ``predict``: any bytes in, either a
well-formed array or one :class:`~braintumor.errors.BrainTumorError` out.

Each file type has a valid seed file; hypothesis mutates it (byte flips, inserted and
deleted runs, truncation) or replaces it with random bytes. A file extension the
readers accept without a seed here fails :func:`test_every_extension_has_a_seed`, so a
new reader is fuzzed from the day it lands. Sizes are bounded (``max_pixels``), and the
example counts keep the whole module to some seconds.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import nibabel as nib
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from braintumor.data import io as bio
from braintumor.errors import BrainTumorError
from tests.data._writers import save_dicom

LIMIT = 200_000  # pixels / voxels: a mutated header cannot make a test slow
FUZZ = settings(
    max_examples=int(os.environ.get("BRAINTUMOR_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,  # no .hypothesis folder in the checkout
)


def _pil(fmt: str, mode: str = "L") -> Callable[[], bytes]:
    def make() -> bytes:
        rng = np.random.default_rng(0)
        shape = (12, 10, 3) if mode == "RGB" else (12, 10)
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(buf, format=fmt)
        return buf.getvalue()

    return make


def _tiff() -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.arange(120, dtype=np.uint16).reshape(12, 10))
    return buf.getvalue()


def _dicom() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = save_dicom(Path(tmp) / "a.dcm", np.arange(120, dtype=np.uint16).reshape(12, 10))
        return path.read_bytes()


def _nifti(gz: bool) -> Callable[[], bytes]:
    def make() -> bytes:
        img = nib.Nifti1Image(np.arange(240, dtype=np.float32).reshape(6, 5, 8), np.eye(4))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / ("v.nii.gz" if gz else "v.nii")
            nib.save(img, path)
            return path.read_bytes()

    return make


SEEDS: dict[str, Callable[[], bytes]] = {
    ".png": _pil("PNG"),
    ".jpg": _pil("JPEG", "RGB"),
    ".jpeg": _pil("JPEG"),
    ".bmp": _pil("BMP", "RGB"),
    ".tif": _tiff,
    ".tiff": _tiff,
    ".dcm": _dicom,
    ".dicom": _dicom,
    ".nii": _nifti(False),
    ".nii.gz": _nifti(True),
}
IMAGES = [e for e in SEEDS if e in bio.IMAGE_EXTENSIONS + bio.DICOM_EXTENSIONS]
VOLUMES = [e for e in SEEDS if e in bio.VOLUME_EXTENSIONS]


def test_every_extension_has_a_seed() -> None:
    readable = bio.IMAGE_EXTENSIONS + bio.DICOM_EXTENSIONS + bio.VOLUME_EXTENSIONS
    assert set(readable) <= set(SEEDS), "add a seed file for the new reader to SEEDS"


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """The seed with a few edits, truncated, or random bytes."""
    kind = draw(st.sampled_from(["edit", "edit", "truncate", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=600))
    data = bytearray(seed)
    if kind == "truncate":
        return bytes(data[: draw(st.integers(0, max(0, len(data) - 1)))])
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        op = draw(st.sampled_from(["set", "insert", "delete"]))
        if op == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            del data[at : at + draw(st.integers(1, 16))]
    return bytes(data)


def _write(data: bytes, ext: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    path = folder / f"f{ext}"
    path.write_bytes(data)
    return path


def _cleanup(path: Path) -> None:
    for p in path.parent.iterdir():
        p.unlink()
    path.parent.rmdir()


def _image_ok(a: np.ndarray) -> None:
    assert a.dtype == np.float32 and a.ndim == 3 and a.shape[0] in (1, 3)
    assert a.shape[1] * a.shape[2] <= LIMIT
    assert np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0


@pytest.mark.parametrize("ext", IMAGES)
def test_image_readers_survive_mutated_files(ext: str) -> None:
    seed = SEEDS[ext]()

    @FUZZ
    @given(data=mutated(seed))
    def check(data: bytes) -> None:
        path = _write(data, ext)
        try:
            try:
                _image_ok(bio.read_image(path, max_pixels=LIMIT))
            except BrainTumorError:
                pass
            try:
                mask = bio.read_mask(path, max_pixels=LIMIT)
                assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
            except BrainTumorError:
                pass
            try:
                bio.image_spacing(path)
            except BrainTumorError:
                pass
        finally:
            _cleanup(path)

    check()


@pytest.mark.parametrize("ext", VOLUMES)
def test_volume_reader_survives_mutated_files(ext: str) -> None:
    seed = SEEDS[ext]()

    @FUZZ
    @given(data=mutated(seed))
    def check(data: bytes) -> None:
        path = _write(data, ext)
        try:
            vol, affine, _ = bio.read_volume(path, max_voxels=LIMIT)
            assert vol.ndim == 3 and vol.dtype == np.float32 and np.isfinite(affine).all()
            assert abs(np.linalg.det(affine[:3, :3])) > 0
        except BrainTumorError:
            pass
        finally:
            _cleanup(path)

    check()


@FUZZ
@given(data=mutated(_dicom()), copies=st.integers(1, 3))
def test_dicom_series_reader_survives_mutated_slices(data: bytes, copies: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="fuzz-series-"))
    try:
        for i in range(copies):
            (folder / f"{i}.dcm").write_bytes(data)
        try:
            vol, affine, _ = bio.read_dicom_series(folder, max_voxels=LIMIT)
            assert vol.ndim == 3 and vol.shape[-1] == copies
        except BrainTumorError:
            pass
    finally:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


ARRAYS = st.sampled_from([np.uint8, np.uint16, np.int16, np.float32, np.float64]).flatmap(
    lambda dt: st.tuples(st.integers(0, 6), st.integers(0, 6), st.sampled_from([0, 1, 3, 4])).map(
        lambda s: (dt, s)
    )
)


@FUZZ
@given(spec=ARRAYS, fill=st.sampled_from(["random", "nan", "inf", "const", "mixed"]))
def test_tiff_arrays_of_any_shape_and_values(
    spec: tuple[type, tuple[int, int, int]], fill: str
) -> None:
    dtype, (h, w, c) = spec
    shape = (h, w) if c == 0 else (h, w, c)
    rng = np.random.default_rng(h * 31 + w)
    a = (rng.random(shape) * 300).astype(dtype)
    if np.issubdtype(dtype, np.floating) and a.size:
        if fill in ("nan", "inf"):
            a[...] = np.nan if fill == "nan" else np.inf
        elif fill == "mixed":
            a.flat[0] = np.nan
    if fill == "const":
        a[...] = 7
    folder = Path(tempfile.mkdtemp(prefix="fuzz-arr-"))
    path = folder / "a.tif"
    try:
        try:
            tifffile.imwrite(path, a, photometric="rgb" if c in (3, 4) else "minisblack")
        except ValueError:  # tifffile cannot write it (e.g. 0 x 0 RGB): nothing to read
            return
        try:
            _image_ok(bio.read_image(path, max_pixels=LIMIT))
        except BrainTumorError:
            pass
    finally:
        _cleanup(path)


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from braintumor.inference.predictor import Predictor
    from tests.serve.conftest import make_tiny_run

    return Predictor.from_run(make_tiny_run("segmentation", tmp_path_factory.mktemp("fz") / "s"))


@pytest.mark.parametrize("ext", [".png", ".tif", ".nii.gz"])
def test_predict_path_survives_mutated_files(predictor, ext: str) -> None:  # type: ignore[no-untyped-def]
    from braintumor.inference.predict_files import predict_inputs

    seed = SEEDS[ext]()

    @settings(FUZZ, max_examples=max(5, FUZZ.max_examples // 4))
    @given(data=mutated(seed))
    def check(data: bytes) -> None:
        path = _write(data, ext)
        env = {"BRAINTUMOR_MAX_PIXELS": str(LIMIT), "BRAINTUMOR_MAX_VOXELS": str(LIMIT)}
        try:
            with mock.patch.dict(os.environ, env):
                results = predict_inputs(predictor, [path], path.parent / "out")
            assert len(results) == 1 and results[0]["pixels"]
        except BrainTumorError:
            pass
        finally:
            for p in sorted(path.parent.rglob("*"), reverse=True):
                p.rmdir() if p.is_dir() else p.unlink()
            path.parent.rmdir()

    check()
