"""``braintumor export`` (ONNX) and ``braintumor serve`` (HTTP service with a web page).

torch, onnx, FastAPI and uvicorn are imported inside the commands so that ``--help``
stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from braintumor.cli.app import app
from braintumor.errors import ConfigError


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


@app.command()
def serve(
    runs: list[Path] = typer.Argument(..., help="One or more run folders to serve."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0: all; beware)."),
    port: int = typer.Option(8000, help="TCP port."),
    max_upload_mb: float = typer.Option(20.0, help="Largest accepted upload, in MB."),
) -> None:
    """Serve runs over HTTP: a web page at /, JSON at /predict, /models, /health."""
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port} is not a TCP port; use 1-65535 (e.g. 8000)")
    if not max_upload_mb > 0:
        raise ConfigError(f"--max-upload-mb {max_upload_mb} must be positive (e.g. 20)")
    import uvicorn

    from braintumor.serve.app import create_app

    web = create_app(runs, max_upload_bytes=int(max_upload_mb * 2**20))
    typer.echo(f"serving {len(runs)} model(s) on http://{host}:{port}/  (Ctrl+C to stop)")
    uvicorn.run(web, host=host, port=port, log_level="info")
