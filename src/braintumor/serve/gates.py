"""What keeps one client (or fifty) from taking the service down.

The bounds are a :class:`~braintumor.serve.limits.ServiceLimits`.

- :class:`UploadGate`: reads a multipart body with a byte cap, a per-read timeout
  (a stalled upload is dropped with 408) and a cap on uploads in progress (503 beyond
  it); a client that disconnects mid-upload costs one log line, not a traceback.
- :class:`InferenceGate`: at most ``max_inference`` decodes + predictions at a time,
  at most ``max_queue`` more waiting; beyond that 503 with ``Retry-After``, so a burst
  queues briefly instead of piling threads (and decoded images) into memory.

Endpoints use both through :meth:`UploadGate.read_form` and :meth:`InferenceGate.run`;
each returns either the result or the :class:`~fastapi.responses.JSONResponse` to send.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from braintumor.serve.limits import MULTIPART_SLACK, ServiceLimits, size_text

# uvicorn's own error log: these lines appear beside its access log, formatted alike.
log = logging.getLogger("uvicorn.error")

T = TypeVar("T")


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


class _TooLarge(Exception):
    pass


class _Stalled(Exception):
    pass


def _busy(what: str) -> JSONResponse:
    return json_error(503, f"the service is busy ({what}); retry shortly", {"Retry-After": "1"})


class UploadGate:
    """Reads multipart uploads within the byte, time and concurrency limits."""

    def __init__(self, limits: ServiceLimits) -> None:
        self.limits = limits
        self.active = 0

    def too_large(self, declared: int | None = None) -> JSONResponse:
        what = f"upload of {size_text(declared)}" if declared else "upload"
        return json_error(
            413,
            f"{what} exceeds the limit of {size_text(self.limits.max_upload_bytes)}; send a "
            "smaller file or raise serve --max-upload-mb",
        )

    async def read_form(self, request: Request) -> FormData | JSONResponse:
        """The parsed form, or the error response (413, 400, 408, 503)."""
        cap = self.limits.max_upload_bytes + MULTIPART_SLACK
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:  # refused before reading the body
            return self.too_large(int(declared))
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return json_error(400, "send the scan as multipart/form-data in a field named 'file'")
        if self.active >= self.limits.max_uploads:
            return _busy(f"{self.active} uploads in progress")
        self.active += 1
        try:
            return await self._parse(request, cap)
        finally:
            self.active -= 1

    async def _parse(self, request: Request, cap: int) -> FormData | JSONResponse:
        seen = 0
        timeout = self.limits.read_timeout_s

        async def bounded_receive() -> Any:
            # Counts the body as it streams in (a chunked upload without, or with a
            # false, Content-Length is cut off at the limit, never buffered whole) and
            # gives each piece ``timeout`` seconds: a half-sent body cannot hold a
            # connection and its buffers forever.
            nonlocal seen
            try:
                message = await asyncio.wait_for(request.receive(), timeout)
            except TimeoutError:
                raise _Stalled from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:
                    raise _TooLarge
            return message

        client = request.client.host if request.client else "?"
        try:
            return await Request(request.scope, bounded_receive).form(max_files=1, max_fields=8)
        except _TooLarge:
            return self.too_large()
        except _Stalled:
            log.warning("upload from %s stalled for %.0f s; dropped (408)", client, timeout)
            return json_error(408, f"upload stalled: no data for {timeout:g} s")
        except ClientDisconnect:
            # Nobody is left to read a response; one line instead of a traceback.
            log.info("client %s disconnected during the upload (%s received)", client, seen)
            return json_error(400, "client disconnected during the upload")
        except HTTPException as exc:  # starlette's answer to a malformed multipart body
            return json_error(400, f"cannot parse the multipart upload: {exc.detail}")


class InferenceGate:
    """Runs blocking work in the thread pool, ``max_inference`` at a time, with a queue."""

    def __init__(self, limits: ServiceLimits) -> None:
        self.limits = limits
        self.slots = asyncio.Semaphore(limits.max_inference)
        self.waiting = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T | JSONResponse:
        if self.slots.locked() and self.waiting >= self.limits.max_queue:
            return _busy(f"{self.waiting} requests queued")
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        try:
            return await run_in_threadpool(fn, *args)
        finally:
            self.slots.release()
