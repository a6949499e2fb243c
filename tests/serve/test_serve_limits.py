"""The service under abuse: bombs, stalls, disconnects, floods (bounded, clear answers)."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from braintumor.serve.app import create_app
from braintumor.serve.limits import ServiceLimits
from tests.data._hostile import png_bomb, tiff_with_size

BODY = b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((24, 24), 90, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def small_limits() -> ServiceLimits:
    return ServiceLimits(max_upload_bytes=2_000_000, max_pixels=100_000, read_timeout_s=0.3)


@pytest.fixture(scope="module")
def client(cls_run: Path, small_limits: ServiceLimits) -> Any:
    with TestClient(create_app([cls_run], limits=small_limits)) as c:
        yield c


@pytest.mark.parametrize("kind", ["png", "tiff"])
def test_bomb_is_413_before_decoding(client: TestClient, tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"bomb.{'png' if kind == 'png' else 'tif'}"
    if kind == "png":
        png_bomb(path, 3000, 3000)
    else:
        tiff_with_size(path, 30000, 30000)
    r = client.post("/predict", files={"file": (path.name, path.read_bytes())})
    assert r.status_code == 413, r.text
    assert "exceeds the limit of 100,000 pixels" in r.json()["detail"]
    assert str(tmp_path) not in r.json()["detail"]  # the user's name, not our temp copy


def test_health_reports_the_limits(client: TestClient, small_limits: ServiceLimits) -> None:
    health = client.get("/health").json()
    assert health["max_pixels"] == small_limits.max_pixels
    assert health["read_timeout_s"] == small_limits.read_timeout_s


def _asgi_call(app: Any, receive: Any) -> tuple[int, list[Any]]:
    """Drive the ASGI app directly with a hand-made ``receive`` (stalls, disconnects)."""
    sent: list[Any] = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 8000),
        "headers": [(b"content-type", b"multipart/form-data; boundary=XX")],
    }  # fmt: skip

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, sent


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def gate_log() -> Any:
    """What the gates log (uvicorn's logger may not propagate to pytest's handler)."""
    from braintumor.serve.gates import log

    handler, level = _Records(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield handler
    log.removeHandler(handler)
    log.setLevel(level)


def test_stalled_upload_times_out_with_408(
    cls_run: Path, small_limits: ServiceLimits, gate_log: _Records
) -> None:
    app = create_app([cls_run], limits=small_limits)
    parts = [{"type": "http.request", "body": BODY, "more_body": True}]

    async def receive() -> Any:
        if parts:
            return parts.pop()
        await asyncio.sleep(30)  # the client never sends the rest

    status, _ = _asgi_call(app, receive)
    assert status == 408
    assert any("stalled" in r.getMessage() for r in gate_log.records)


def test_disconnect_mid_upload_logs_one_line(
    cls_run: Path, small_limits: ServiceLimits, gate_log: _Records
) -> None:
    app = create_app([cls_run], limits=small_limits)
    parts = [
        {"type": "http.disconnect"},
        {"type": "http.request", "body": BODY + b"x" * 1000, "more_body": True},
    ]

    async def receive() -> Any:
        return parts.pop()

    _asgi_call(app, receive)
    lines = [r for r in gate_log.records if "disconnected" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert not any(r.exc_info for r in gate_log.records)  # no traceback logged


def test_full_queue_and_too_many_uploads_are_503(cls_run: Path) -> None:
    no_uploads = ServiceLimits(max_uploads=0)
    with TestClient(create_app([cls_run], limits=no_uploads)) as c:
        r = c.post("/predict", files={"file": ("a.png", _png())})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert "uploads in progress" in r.json()["detail"]


def test_inference_gate_bounds_concurrency() -> None:
    from braintumor.serve.gates import InferenceGate

    gate = InferenceGate(ServiceLimits(max_inference=1, max_queue=1))
    running, peak = 0, 0

    def work() -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        import time

        time.sleep(0.05)
        running -= 1
        return "ok"

    async def burst() -> list[Any]:
        return await asyncio.gather(*(gate.run(work) for _ in range(4)))

    results = asyncio.run(burst())
    done = [r for r in results if r == "ok"]
    busy = [r for r in results if r != "ok"]
    assert peak == 1  # never two at once
    assert len(done) == 2 and len(busy) == 2  # one running + one queued; the rest 503
    assert all(r.status_code == 503 for r in busy)


@pytest.mark.parametrize(
    ("host", "warns"),
    [("127.0.0.1", False), ("localhost", False), ("::1", False), ("0.0.0.0", True),
     ("192.168.1.5", True), ("myhost.example", True)],
)  # fmt: skip
def test_serve_warns_without_loopback(
    cls_run: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    host: str,
    warns: bool,
) -> None:
    import uvicorn

    from braintumor.cli import main

    started: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(kw))  # no server
    main(["serve", str(cls_run), "--host", host, "--max-pixels", "1000"])
    err = capsys.readouterr().err
    assert started["host"] == host
    assert ("no authentication" in err) is warns


@pytest.mark.parametrize("flag", ["--max-pixels", "--upload-timeout", "--max-inference"])
def test_serve_refuses_non_positive_limits(
    cls_run: Path, capsys: pytest.CaptureFixture[str], flag: str
) -> None:
    from braintumor.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", str(cls_run), flag, "0"])
    assert exc.value.code == 2 and flag in capsys.readouterr().err
