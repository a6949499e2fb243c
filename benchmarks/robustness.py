"""Rerun the hostile-user audit (issue 12): CLI and service.

CLI: >= 500 hostile command lines across inspect, train, evaluate, predict, pipeline,
explain and export. Most run in-process in two worker processes; a sample also runs as
real ``python -m braintumor`` subprocesses. A traceback is any "Traceback" in stderr
or an exit code outside {0, 1, 2}; a hang is a case over the timeout.

Service: ``--requests`` classification requests at ``--concurrency`` against a real
``braintumor serve`` on 127.0.0.1, first quiet, then with ``--hostile`` hostile requests
(bombs, stalls, garbage, oversized, malformed, disconnects) alongside.

    python benchmarks/robustness.py            # about 5-10 minutes on 2 cores
    python benchmarks/robustness.py --quick    # a smoke run (a fraction of each)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import append_markdown, markdown_table, write_result  # noqa: E402
from _robust_cli import build_cases, run_in_process, run_subprocesses  # noqa: E402
from _robust_files import tiny_run  # noqa: E402
from _robust_service import (  # noqa: E402
    good_traffic,
    hostile_traffic,
    peak_rss_mb,
    start_server,
)


def cli_audit(root: Path, quick: bool, timeout: float, sample: int) -> dict[str, Any]:
    cases = build_cases(root / "cli")
    if quick:
        cases = cases[::8]
    cache = str(root / "cache")
    t0 = time.perf_counter()
    rows = run_in_process(cases, cache, timeout)
    t_in = time.perf_counter() - t0
    step = max(1, len(cases) // sample)
    t0 = time.perf_counter()
    sub = run_subprocesses(cases[::step][:sample], cache, timeout)
    t_sub = time.perf_counter() - t0
    count = collections.Counter(r["outcome"] for r in rows)
    sub_count = collections.Counter(r["outcome"] for r in sub)
    commands = collections.Counter(r["args"][0] for r in rows)
    seconds: collections.Counter[str] = collections.Counter()
    for r in rows:
        seconds[r["args"][0]] += r["s"]
    bad = [r for r in rows + sub if r["outcome"] in ("traceback", "hang")]
    return {
        "cases": len(rows), "by_command": dict(commands),
        "seconds_by_command": {k: round(v, 1) for k, v in seconds.items()},
        "mode": "in-process: braintumor.cli.main in 2 worker processes; subprocess: "
        "python -m braintumor, every k-th case", "in_process": dict(count),
        "in_process_s": round(t_in, 1), "subprocess_cases": len(sub),
        "subprocess": dict(sub_count), "subprocess_s": round(t_sub, 1),
        "tracebacks": sum(r["outcome"] == "traceback" for r in rows + sub),
        "hangs": sum(r["outcome"] == "hang" for r in rows + sub),
        "failures": bad, "exit1": [r for r in rows + sub if r["outcome"] == "exit1"][:20],
    }  # fmt: skip


async def _attack(url: str, n: int, concurrency: int, hostile: int, stall: float) -> tuple:
    return await asyncio.gather(
        good_traffic(url, n, concurrency), hostile_traffic(url, hostile, stall)
    )


def service_audit(root: Path, n: int, concurrency: int, hostile: int, stall: float) -> dict:
    run = tiny_run("classification", root / "served", image_size=128, name="custom_cnn")
    proc, url = start_server(run, stall, str(root / "cache"))
    try:
        asyncio.run(good_traffic(url, 2 * concurrency, concurrency))  # warm-up
        quiet = asyncio.run(good_traffic(url, n, concurrency))
        loaded, attack = asyncio.run(_attack(url, n, concurrency, hostile, stall))
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=20)
        except Exception:
            proc.kill()
            _, err = proc.communicate()
    log = err.decode(errors="replace")
    return {
        "model": "custom_cnn (untrained), 128 px, 256 x 256 PNG uploads",
        "quiet": quiet, "under_attack": loaded, "hostile": attack,
        "p95_ratio": round(loaded["p95_ms"] / quiet["p95_ms"], 2),
        "server_peak_rss_mb": round(rss, 1),
        "server_log_tracebacks": log.count("Traceback"),
        "server_log_lines": len(log.splitlines()),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run")
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds before a case hangs")
    ap.add_argument("--subprocess-sample", type=int, default=24)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--hostile", type=int, default=50)
    ap.add_argument("--stall-timeout", type=float, default=10.0, help="serve --upload-timeout")
    ap.add_argument("--tag", default="robustness")
    ap.add_argument("--note", default="", help="a remark for BENCHMARKS.md (e.g. shared machine)")
    args = ap.parse_args()
    n = args.requests // 10 if args.quick else args.requests
    hostile = args.hostile // 5 if args.quick else args.hostile
    sample = args.subprocess_sample // 4 if args.quick else args.subprocess_sample
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="braintumor-robustness-") as tmp:
        root = Path(tmp)
        cli = cli_audit(root, args.quick, args.timeout, sample)
        print(f"CLI: {cli['cases']} in-process cases {cli['in_process']}, "
              f"{cli['subprocess_cases']} subprocess cases {cli['subprocess']}: "
              f"{cli['tracebacks']} tracebacks, {cli['hangs']} hangs", flush=True)  # fmt: skip
        svc = service_audit(root, n, args.concurrency, hostile, args.stall_timeout)
    total = time.perf_counter() - t0
    q, a = svc["quiet"], svc["under_attack"]
    print(
        f"service: quiet p50 {q['p50_ms']} ms p95 {q['p95_ms']} ms, {q['errors']} errors; "
        f"under attack p50 {a['p50_ms']} ms p95 {a['p95_ms']} ms ({svc['p95_ratio']}x), "
        f"{a['errors']} errors; peak server RSS {svc['server_peak_rss_mb']} MB; total {total:.0f} s"
    )
    payload = {"quick": args.quick, "note": args.note, "total_s": round(total, 1), "cli": cli,
               "service": svc}  # fmt: skip
    path = write_result(args.tag + ("_quick" if args.quick else ""), payload)
    print(f"written: {path}")
    if args.quick:
        return
    table = markdown_table(
        ["part", "cases", "tracebacks", "hangs", "errors", "p50 ms", "p95 ms", "peak RSS MB"],
        [
            ["CLI (in-process + subprocess)", f"{cli['cases']} + {cli['subprocess_cases']}",
             cli["tracebacks"], cli["hangs"], "", "", "", ""],
            ["service, quiet", q["requests"], "", "", q["errors"], q["p50_ms"], q["p95_ms"], ""],
            ["service + hostile alongside", f"{a['requests']} + {hostile}",
             svc["server_log_tracebacks"], "", a["errors"], a["p50_ms"], a["p95_ms"],
             svc["server_peak_rss_mb"]],
        ],
    )  # fmt: skip
    append_markdown(
        "Robustness (hostile inputs)",
        table,
        "CLI tracebacks and hangs count both parts (in-process and subprocess); the service "
        "row's tracebacks are in the server log. Targets: 0 tracebacks, 0 hangs, 0 errors, "
        f"p95 under attack <= 1.5x quiet (here {svc['p95_ratio']}x), RSS < 1500 MB. "
        f"Total {total:.0f} s. {args.note}",
    )


if __name__ == "__main__":
    main()
