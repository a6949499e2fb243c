"""``braintumor export`` (ONNX) and ``braintumor serve`` (HTTP service with a web page).

torch, onnx, FastAPI and uvicorn are imported inside the commands so that ``--help``
stays fast.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import typer

from braintumor.cli.app import app
from braintumor.errors import ConfigError
from braintumor.serve.limits import ServiceLimits


@app.command()
def export(
    run: Path = typer.Argument(..., help="Run folder (with model.safetensors and model.json)."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="ONNX file (default: RUN/model.onnx)."
    ),
    opset: int = typer.Option(17, help="ONNX opset version."),
    dynamic_batch: bool = typer.Option(
        True, "--dynamic-batch/--no-dynamic-batch", help="Let the batch size vary at run time."
    ),
) -> None:
    """Export a run's model to ONNX (logits; preprocessing and classes in the metadata).

    The ONNX output is checked against PyTorch with onnxruntime before the file is
    written; a failed export leaves any existing file untouched.
    """
    from braintumor.serve.export import export_run

    result = export_run(run, out, opset=opset, dynamic_batch=dynamic_batch)
    typer.echo(f"wrote {result.path}")
    typer.echo(
        f"max abs difference vs PyTorch: {result.max_abs_diff:.3g} "
        f"(input {'x'.join(map(str, result.input_shape))})"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


@app.command()
def serve(
    runs: list[Path] = typer.Argument(..., help="One or more run folders to serve."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0: all; beware)."),
    port: int = typer.Option(8000, help="TCP port."),
    max_upload_mb: float = typer.Option(20.0, help="Largest accepted upload, in MB."),
    max_pixels: int = typer.Option(
        ServiceLimits.max_pixels, help="Largest image (height x width) decoded; larger is 413."
    ),
    max_voxels: int = typer.Option(ServiceLimits.max_voxels, help="Largest volume decoded."),
    upload_timeout: float = typer.Option(
        ServiceLimits.read_timeout_s, help="Seconds an upload may stall before it is dropped."
    ),
    max_uploads: int = typer.Option(
        ServiceLimits.max_uploads, help="Uploads received at once; more get 503."
    ),
    max_inference: int = typer.Option(
        ServiceLimits.max_inference, help="Predictions computed at once."
    ),
    max_queue: int = typer.Option(
        ServiceLimits.max_queue, help="Requests waiting for a prediction slot; more get 503."
    ),
) -> None:
    """Serve runs over HTTP: a web page at /, JSON at /predict, /models, /health.

    The service has no authentication: keep it on 127.0.0.1, or put it behind a
    reverse proxy that authenticates users and terminates TLS (see the README).
    """
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port} is not a TCP port; use 1-65535 (e.g. 8000)")
    if not max_upload_mb > 0:
        raise ConfigError(f"--max-upload-mb {max_upload_mb} must be positive (e.g. 20)")
    for flag, value in (
        ("--max-pixels", max_pixels),
        ("--max-voxels", max_voxels),
        ("--upload-timeout", upload_timeout),
        ("--max-uploads", max_uploads),
        ("--max-inference", max_inference),
    ):
        if not value > 0:
            raise ConfigError(f"{flag} {value} must be positive")
    if max_queue < 0:
        raise ConfigError(f"--max-queue {max_queue} must be 0 or more")
    import uvicorn

    from braintumor.serve.app import create_app

    limits = ServiceLimits(
        max_upload_bytes=int(max_upload_mb * 2**20),
        max_pixels=max_pixels,
        max_voxels=max_voxels,
        read_timeout_s=upload_timeout,
        max_uploads=max_uploads,
        max_inference=max_inference,
        max_queue=max_queue,
    )
    web = create_app(runs, limits=limits)
    if not _is_loopback(host):
        typer.echo(
            f"warning: --host {host} exposes the service beyond this machine, and it has "
            "no authentication: anyone who can reach the port can use it. Put it behind "
            "a reverse proxy with authentication and TLS (README: 'Serving')",
            err=True,
        )
    typer.echo(f"serving {len(runs)} model(s) on http://{host}:{port}/  (Ctrl+C to stop)")
    uvicorn.run(web, host=host, port=port, log_level="info")
