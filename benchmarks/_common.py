"""Shared helpers for the benchmark scripts: machine info, result files, BENCHMARKS.md."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_DATA = Path(
    os.environ.get("BRAINTUMOR_SHARED_DATASETS", ROOT.parent / "shared" / "datasets")
)


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dev = f"{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "CPU only"
    threads = torch.get_num_threads()
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({threads} threads), {dev}"


def command() -> str:
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def write_result(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "date": dt.date.today().isoformat(),
        "command": command(),
        "machine": machine(),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=float))
    return path


def append_markdown(title: str, table: str, notes: str = "") -> None:
    """Append one dated section (command, machine, table) to BENCHMARKS.md."""
    md = ROOT / "BENCHMARKS.md"
    if not md.exists():
        md.write_text(
            "# Benchmarks\n\n"
            "Every figure below was produced by the command shown, on the machine shown.\n"
        )
    section = (
        f"\n## {title} — {dt.date.today().isoformat()}\n\n"
        f"`{command()}`  \nMachine: {machine()}\n\n{table}\n" + (f"\n{notes}\n" if notes else "")
    )
    with md.open("a") as fh:
        fh.write(section)


def fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if v != v:  # NaN
            return "nan"
        return f"{v:.{digits}f}"
    return str(v)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(out)
