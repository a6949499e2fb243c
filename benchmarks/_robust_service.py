"""The service half of ``robustness.py``: good traffic, quiet and under attack.

The server is a real ``braintumor serve`` subprocess on 127.0.0.1 (loopback only).
Good traffic: ``n`` classification requests at ``concurrency``, first alone (the quiet
figure), then while hostile clients run alongside: decompression bombs, stalled
half-sent bodies, garbage files, oversized and malformed uploads, clients that
disconnect mid-upload. Peak server memory is the process's ``VmHWM``.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from _robust_files import _png_bomb, _tiff_sized
from PIL import Image

HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start_server(run: Path, timeout_s: float, cache: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "BRAINTUMOR_CACHE": cache}
    proc = subprocess.Popen(
        [sys.executable, "-m", "braintumor", "serve", str(run), "--host", HOST,
         "--port", str(port), "--upload-timeout", str(timeout_s)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("the server did not start: " + proc.stderr.read().decode()[-2000:])


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _scan_png(size: int = 256) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


async def good_traffic(url: str, n: int, concurrency: int) -> dict[str, Any]:
    png = _scan_png()
    lat: list[float] = []
    errors: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                t0 = time.perf_counter()
                try:
                    r = await client.post("/predict", files={"file": ("scan.png", png)})
                    if r.status_code != 200:
                        errors.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                lat.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    ms = np.array(lat) * 1000
    return {
        "requests": n, "concurrency": concurrency, "errors": len(errors),
        "error_samples": errors[:5], "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1), "wall_s": round(wall, 2),
        "req_per_s": round(n / wall, 1),
    }  # fmt: skip


def _multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = "robustnessboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), boundary


async def _raw(url: str, body: bytes, boundary: str, send: int, linger: float) -> str:
    """Send the headers and ``send`` bytes of ``body``, wait ``linger`` s, read the answer."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    )
    try:
        writer.write(head.encode() + body[:send])
        await writer.drain()
        if linger < 0:  # disconnect mid-upload
            return "disconnected"
        line = await asyncio.wait_for(reader.readline(), linger)
        return line.decode(errors="replace").strip() or "closed"
    except TimeoutError:
        return "no answer"
    except OSError as exc:  # the server closed the connection before reading it all
        return f"closed by server ({type(exc).__name__})"
    finally:
        writer.close()


async def hostile_traffic(url: str, n: int, stall_s: float) -> dict[str, Any]:
    """``n`` hostile requests (a mix of kinds), staggered over the good traffic."""
    bomb_png, bomb_tif = _png_bomb(12000, 12000), _tiff_sized(30000, 30000)
    rng = np.random.default_rng(5)
    kinds = ["bomb_png", "bomb_tiff", "stall", "garbage", "oversized", "malformed", "disconnect"]
    answers: dict[str, list[str]] = {k: [] for k in kinds}

    async def one(i: int) -> None:
        kind = kinds[i % len(kinds)]
        await asyncio.sleep(0.1 * i)
        if kind in ("bomb_png", "bomb_tiff", "garbage"):
            data = {"bomb_png": bomb_png, "bomb_tiff": bomb_tif}.get(kind, rng.bytes(5000))
            name = {"bomb_png": "bomb.png", "bomb_tiff": "bomb.tif"}.get(kind, "junk.png")
            body, b = _multipart(name, data)
            answers[kind].append(await _raw(url, body, b, len(body), 60))
        elif kind == "stall":
            body, b = _multipart("slow.png", _scan_png())
            answers[kind].append(await _raw(url, body, b, len(body) // 2, stall_s + 30))
        elif kind == "oversized":
            body, b = _multipart("big.png", b"\0" * (25 * 2**20))
            answers[kind].append(await _raw(url, body, b, len(body), 60))
        elif kind == "malformed":
            answers[kind].append(await _raw(url, b"--x\r\nnope\r\n", "robustnessboundary", 99, 60))
        else:
            body, b = _multipart("gone.png", _scan_png())
            answers[kind].append(await _raw(url, body, b, len(body) // 3, -1))

    await asyncio.gather(*(one(i) for i in range(n)))
    return {"requests": n, "answers": answers}
