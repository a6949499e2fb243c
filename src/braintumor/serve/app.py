"""The HTTP service: upload a scan, get class probabilities or a tumour mask.

``create_app(run_dirs)`` loads each run once (``Predictor.from_run``) and serves:

- ``GET /``: a self-contained web page (no CDN) to upload a scan and see the result;
- ``GET /health``: liveness, number of models and the upload limit;
- ``GET /models``: name (the run folder's name), task, classes / mask channels;
- ``POST /predict?model=NAME``: multipart field ``file``; JSON back.

The upload limit is enforced while the body streams in (a too-long body is cut
off, never buffered whole), so a client cannot exhaust memory or disk.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from braintumor.errors import BrainTumorError, ConfigError
from braintumor.serve.results import classification_result, segmentation_result

DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# Room for the multipart boundaries and part headers around the file itself.
_MULTIPART_SLACK = 64 * 1024
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
    predict: Callable[[list[np.ndarray]], Any]  # list of C x H x W in [0, 1] -> probs

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
    )


def create_app(
    run_dirs: Sequence[str | Path], max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
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
    return build_app(models, max_upload_bytes)


def _json_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def _size(n: int) -> str:
    return f"{n / 2**20:.3g} MB" if n >= 2**20 else f"{n / 1024:.3g} KB"


def _safe_suffix(filename: str) -> str:
    """The upload's extension (read_image dispatches on it); odd characters dropped."""
    low = filename.lower()
    suffix = ".nii.gz" if low.endswith(".nii.gz") else Path(low).suffix
    return suffix if suffix.replace(".", "").isalnum() and len(suffix) <= 8 else ""


def _predict_upload(model: ServedModel, upload: UploadFile, limit: int) -> dict[str, Any]:
    """Copy the upload to a temp file with its own suffix, read it, predict (blocking)."""
    from braintumor.data.io import read_image

    filename = upload.filename or "upload"
    with tempfile.TemporaryDirectory(prefix="braintumor-upload-") as tmpdir:
        path = Path(tmpdir) / f"scan{_safe_suffix(filename)}"
        size = 0
        with path.open("wb") as fh:
            while chunk := upload.file.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise _UploadTooLarge
                fh.write(chunk)
        try:
            image = read_image(path)
        except BrainTumorError as exc:
            # Name the user's file, not our temporary copy.
            raise BrainTumorError(str(exc).replace(str(path), filename)) from None
    probs = model.predict([image])[0]
    if model.task == "classification":
        out = classification_result(np.asarray(probs), model.classes)
    else:
        out = segmentation_result(image, np.asarray(probs), model.mask_channels, model.threshold)
    return {
        "model": model.name,
        "task": model.task,
        "filename": filename,
        "image_size": list(image.shape[-2:]),
        **out,
    }


def build_app(
    models: Sequence[ServedModel], max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
) -> FastAPI:
    """The FastAPI app around already loaded models (see :func:`create_app`)."""
    from braintumor import __version__

    by_name = {m.name: m for m in models}
    if len(by_name) != len(models):
        raise ConfigError("served models need unique names")
    limit = int(max_upload_bytes)
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
            "max_upload_bytes": limit,
        }

    @app.get("/models")
    def list_models() -> list[dict[str, Any]]:
        return [m.describe() for m in models]

    @app.post("/predict")
    async def predict(request: Request, model: str | None = None) -> Any:
        name = model or models[0].name
        if name not in by_name:
            return _json_error(404, f"unknown model {name!r}; valid: {', '.join(by_name)}")
        too_large = _json_error(
            413,
            f"upload exceeds the limit of {_size(limit)}; send a "
            "smaller file or raise serve --max-upload-mb",
        )
        cap = limit + _MULTIPART_SLACK
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:  # refused before reading the body
            return _json_error(
                413,
                f"upload of {_size(int(declared))} exceeds the limit of "
                f"{_size(limit)}; send a smaller file or raise "
                "serve --max-upload-mb",
            )
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return _json_error(400, "send the scan as multipart/form-data in a field named 'file'")
        seen = 0

        async def bounded_receive() -> Any:
            # Counts the body as it streams in: a chunked upload without (or with a
            # false) Content-Length is cut off at the limit, not buffered whole.
            nonlocal seen
            message = await request.receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise _UploadTooLarge
            return message

        try:
            form = await Request(request.scope, bounded_receive).form(max_files=1, max_fields=8)
        except _UploadTooLarge:
            return too_large
        except HTTPException as exc:  # starlette's answer to a malformed multipart body
            return _json_error(400, f"cannot parse the multipart upload: {exc.detail}")
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            await form.close()
            return _json_error(400, "no file in the upload; send the scan in a field named 'file'")
        try:
            return await run_in_threadpool(_predict_upload, by_name[name], upload, limit)
        except _UploadTooLarge:
            return too_large
        except BrainTumorError as exc:
            return _json_error(400, str(exc))
        finally:
            await form.close()

    return app
