"""The HTTP service: upload a scan, get class probabilities or a tumour mask.

``create_app(run_dirs)`` loads each run once (``Predictor.from_run``) and serves:

- ``GET /``: a self-contained web page (no CDN) to upload a scan and see the result;
- ``GET /health``: liveness, number of models and the upload limit;
- ``GET /models``: name (the run folder's name), task, classes / mask channels;
- ``POST /predict?model=NAME``: multipart field ``file``; JSON back. A 2D image
  gives probabilities or one mask; a NIfTI volume or a zipped DICOM series gives
  every slice with its mask and the tumour volume in mL (:mod:`braintumor.serve.volume`).
  Scans are scaled to the run's intensity (``unit`` or ``zscore``), as ``predict`` does.

The limits (:mod:`braintumor.serve.limits`) are enforced while the body streams in
(a too-long body is cut off, never buffered whole; a stalled one times out), on the
image's declared size before it is decoded, and on the number of uploads and
predictions in flight, so a client cannot exhaust memory, disk or threads.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile

from braintumor.data.limits import TooLargeError
from braintumor.errors import BrainTumorError, ConfigError
from braintumor.inference.scans import load_input
from braintumor.serve.gates import InferenceGate, UploadGate, json_error
from braintumor.serve.limits import ServiceLimits
from braintumor.serve.results import classification_result, segmentation_result
from braintumor.serve.volume import is_volume_upload, predict_volume_upload, read_volume_upload

DEFAULT_MAX_UPLOAD_BYTES = ServiceLimits.max_upload_bytes
_CHUNK = 1024 * 1024


@dataclass
class ServedModel:
    """One run as the service sees it."""

    name: str
    task: str  # "classification" | "segmentation"
    classes: list[str]
    mask_channels: list[str]
    threshold: float
    image_size: int
    predict: Callable[[list[np.ndarray]], Any]  # list of C x H x W on `intensity` -> probs
    intensity: str = "unit"  # the run's scale (model card); uploads are brought to it
    # The ordered slices of one volume -> probs, seen as one volume (per-volume scaling,
    # 2.5D neighbours, 3-D post-processing); None: slice by slice with ``predict``.
    predict_series: Callable[[list[np.ndarray]], Any] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "classes": self.classes,
            "mask_channels": self.mask_channels,
            "image_size": self.image_size,
        }


class _UploadTooLarge(Exception):
    pass


def load_served_model(run_dir: str | Path, name: str | None = None) -> ServedModel:
    """Load a run folder for serving (weights from ``model.safetensors`` only)."""
    from braintumor.inference.predictor import Predictor

    predictor = Predictor.from_run(run_dir)
    classes = predictor.names if predictor.is_classification else []
    return ServedModel(
        name=name or Path(run_dir).resolve().name,
        task=str(predictor.card["task"]),
        classes=list(classes),
        mask_channels=[] if predictor.is_classification else list(predictor.names),
        threshold=predictor.threshold,
        image_size=predictor.image_size,
        predict=predictor.predict_images,
        intensity=predictor.intensity,
        predict_series=functools.partial(predictor.predict_images, volume=True),
    )


def create_app(
    run_dirs: Sequence[str | Path],
    max_upload_bytes: int | None = None,
    limits: ServiceLimits | None = None,
) -> FastAPI:
    """Build the service for one or more run folders.

    Each model is named after its run folder (``runs/a/best`` and ``runs/b/best``
    become ``best`` and ``best-2``); ``POST /predict`` without ``model=`` uses the first.
    """
    if not run_dirs:
        raise ConfigError("serve needs at least one run folder: braintumor serve RUN [RUN...]")
    models: list[ServedModel] = []
    for d in run_dirs:
        name = Path(d).resolve().name
        taken = {m.name for m in models}
        k = 2
        while name in taken:  # runs/a/best and runs/b/best: best, best-2
            name = f"{Path(d).resolve().name}-{k}"
            k += 1
        models.append(load_served_model(d, name))
    return build_app(models, max_upload_bytes, limits)


def _safe_suffix(filename: str) -> str:
    """The upload's extension (the scan reader dispatches on it); odd characters dropped."""
    low = filename.lower()
    suffix = ".nii.gz" if low.endswith(".nii.gz") else Path(low).suffix
    return suffix if suffix.replace(".", "").isalnum() and len(suffix) <= 8 else ""


def _predict_upload(
    model: ServedModel, upload: UploadFile, limits: ServiceLimits
) -> dict[str, Any]:
    """Copy the upload to a temp file with its own suffix, read it, predict (blocking)."""
    filename = upload.filename or "upload"
    with tempfile.TemporaryDirectory(prefix="braintumor-upload-") as tmpdir:
        path = Path(tmpdir) / f"scan{_safe_suffix(filename)}"
        size = 0
        with path.open("wb") as fh:
            while chunk := upload.file.read(_CHUNK):
                size += len(chunk)
                if size > limits.max_upload_bytes:
                    raise _UploadTooLarge
                fh.write(chunk)
        try:
            if is_volume_upload(filename):
                return {
                    "model": model.name,
                    "task": model.task,
                    "filename": filename,
                    **_predict_volume(model, path, filename, limits),
                }
            # A 2D image through the reader predict and pipeline use; its declared size
            # is checked before decoding.
            scan = load_input(path, max_pixels=limits.max_pixels)
        except BrainTumorError as exc:
            # Name the user's file, not our temporary copy.
            raise type(exc)(str(exc).replace(str(path), filename)) from None
    image = scan.data
    probs = model.predict(scan.slices(model.intensity))[0]
    if model.task == "classification":
        out = classification_result(np.asarray(probs), model.classes)
    else:
        out = segmentation_result(image, np.asarray(probs), model.mask_channels, model.threshold)
    return {
        "model": model.name,
        "task": model.task,
        "filename": filename,
        "kind": "image",
        "image_size": list(image.shape[-2:]),
        **out,
    }


def _predict_volume(
    model: ServedModel, path: Path, filename: str, limits: ServiceLimits
) -> dict[str, Any]:
    """A NIfTI volume or zipped DICOM series: every slice segmented (blocking)."""
    if model.task != "segmentation":
        raise BrainTumorError(
            f"{filename}: is a volume and {model.name} classifies 2D slices; choose a "
            "segmentation model or upload one slice (PNG, JPEG, TIFF or DICOM)"
        )
    scan = read_volume_upload(path, filename, max_voxels=limits.max_voxels)
    return predict_volume_upload(
        model.predict_series or model.predict,
        model.intensity,
        model.threshold,
        model.mask_channels,
        scan,
    )


def build_app(
    models: Sequence[ServedModel],
    max_upload_bytes: int | None = None,
    limits: ServiceLimits | None = None,
) -> FastAPI:
    """The FastAPI app around already loaded models (see :func:`create_app`)."""
    from braintumor import __version__

    by_name = {m.name: m for m in models}
    if len(by_name) != len(models):
        raise ConfigError("served models need unique names")
    limits = limits or ServiceLimits()
    if max_upload_bytes is not None:
        limits = replace(limits, max_upload_bytes=int(max_upload_bytes))
    uploads, inference = UploadGate(limits), InferenceGate(limits)
    app = FastAPI(
        title="braintumor",
        version=__version__,
        description="Brain MRI classification and tumour segmentation.",
    )
    page = (resources.files("braintumor.serve") / "static" / "index.html").read_text("utf-8")

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "models": len(by_name),
            **limits.describe(),
        }

    @app.get("/models")
    def list_models() -> list[dict[str, Any]]:
        return [m.describe() for m in models]

    @app.post("/predict")
    async def predict(request: Request, model: str | None = None) -> Any:
        name = model or models[0].name
        if name not in by_name:
            return json_error(404, f"unknown model {name!r}; valid: {', '.join(by_name)}")
        form = await uploads.read_form(request)
        if isinstance(form, JSONResponse):
            return form
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            await form.close()
            return json_error(400, "no file in the upload; send the scan in a field named 'file'")
        try:
            return await inference.run(_predict_upload, by_name[name], upload, limits)
        except _UploadTooLarge:
            return uploads.too_large()
        except TooLargeError as exc:  # a decompression bomb, refused from its header
            return json_error(413, str(exc))
        except BrainTumorError as exc:
            return json_error(400, str(exc))
        finally:
            await form.close()

    return app
