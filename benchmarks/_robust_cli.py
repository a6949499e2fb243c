"""Hostile command lines for ``robustness.py`` and the runner that counts tracebacks.

Most cases run in-process (``braintumor.cli.main`` in two long-lived worker
processes: no interpreter start per case); a sample runs as real ``python -m
braintumor`` subprocesses. A worker that does not answer within the timeout is killed
and replaced, and the case counts as a hang.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing as mp
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _robust_files import broken_runs, hostile_files, tiny_run

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm")
TINY = "data.options={n_patients: 6, slices_per_patient: 2, size: 32}"


def build_cases(root: Path) -> list[list[str]]:
    """Write the workspace under ``root``; return the argument lists (>= 500)."""
    cls, seg = tiny_run("classification", root / "cls"), tiny_run("segmentation", root / "seg")
    files = hostile_files(root / "files")
    bad_runs = broken_runs(root / "runs")
    out = str(root / "out")
    cases: list[list[str]] = []
    for f in files:
        cases += [
            ["predict", str(cls), str(f)],
            ["predict", str(seg), str(f), "--out", out],
            ["pipeline", "--classifier", str(cls), "--segmenter", str(seg), str(f), "--out", out],
            ["explain", str(cls), str(f), "--out", out],
        ]
        if f.name.endswith(IMAGE_EXT) and f.is_file():
            folder = root / "sets" / f.name.replace(".", "_")
            for label, src in (("yes", f), ("no", files[0])):
                (folder / label).mkdir(parents=True, exist_ok=True)
                if src.is_file():
                    (folder / label / src.name).write_bytes(src.read_bytes())
            cases.append(["inspect", f"image-folder:{folder}"])
    some = [f for f in files if f.suffix in (".png", ".tif")][:2]
    for run in bad_runs:
        cases += [
            ["predict", str(run), str(some[0])],
            ["evaluate", str(run)],
            ["export", str(run), "--out", str(root / "m.onnx")],
            ["explain", str(run), str(some[0]), "--out", out],
            ["pipeline", "--classifier", str(run), "--segmenter", str(seg), str(some[0]),
             "--out", out],
        ]  # fmt: skip
    cases += _option_cases(cls, seg, some[0], root)
    return cases


def _train(root: Path, *extra: str) -> list[str]:
    return [
        "train", "--data", "synthetic", "--out", str(root / "train_out"), "--epochs", "1",
        "--image-size", "32", "--accelerator", "cpu", "--set", "trainer.progress=false",
        "--set", TINY, *extra,
    ]  # fmt: skip


def _option_cases(cls: Path, seg: Path, img: Path, root: Path) -> list[list[str]]:
    """Bad flags and values for every command (valid YAML, invalid meaning, and worse)."""
    out = str(root / "out")
    c: list[list[str]] = []
    for value in ("-1", "0", "abc", "1e309", "nan", "99999999999999999999", ""):
        c += [
            ["inspect", "synthetic", "--option", f"size={value}"],
            ["inspect", "synthetic", "--option", f"n_patients={value}"],
            ["evaluate", str(cls), "--split", value or "x"],
            ["export", str(cls), "--opset", value or "0", "--out", str(root / "m.onnx")],
            ["pipeline", "--classifier", str(cls), "--segmenter", str(seg), str(img), "--out",
             out, "--threshold", value or "x"],
            ["serve", str(cls), "--port", value or "0"],
            _train(root, "--set", f"optim.lr={value or 'x'}"),
        ]  # fmt: skip
    for opt in ("size", "seed", "target", "classes", "modalities", "bogus"):
        c.append(["inspect", "synthetic", "--option", f"{opt}=[1"])
        c.append(["evaluate", str(cls), "--data", "synthetic", "--option", f"{opt}=zz"])
    c += [
        ["evaluate", str(cls), "--option", "size=4"],
        ["evaluate", str(cls), "--data", "nosuchformat:/x"],
        ["evaluate", str(cls), "--data", f"image-folder:{root / 'files'}"],
        ["evaluate", str(seg), "--data", "synthetic", "--split", "val"],
        ["explain", str(cls), str(img), "--out", out, "--layer", "nope.0"],
        ["explain", str(seg), str(img), "--out", out],
        ["explain", str(cls), str(img), "--out", str(img)],
        ["predict", str(cls), str(img), "--out", str(img)],
        ["pipeline", "--classifier", str(seg), "--segmenter", str(cls), str(img), "--out", out],
        ["pipeline", "--classifier", str(cls), "--segmenter", str(seg), "--out", out],
        ["pipeline", "--classifier", str(cls), "--segmenter", str(seg), "--evaluate", "--out", out],
        ["export", str(cls), "--out", str(root)],
        ["inspect", "image-folder:/nonexistent"],
        ["inspect", "brats:/dev/null"],
        ["inspect", "lgg:" + str(img)],
        ["inspect", "figshare:" + str(root / "files")],
        ["inspect", "brats-h5:" + str(root / "files")],
        ["inspect", "busi:" + str(root / "files")],
        ["inspect", "synthetic", "--preview", str(root / "files")],
        ["models", "--task", "detection"],
        ["download", "nope", "--to", str(root / "dl")],
        _train(root, "--model", "nope"),
        _train(root, "--set", "data.image_size=7"),
        _train(root, "--set", "trainer.epochs=-3"),
        _train(root, "--set", "optim.name=adamw2"),
        _train(root, "--set", "model.kwargs={widths: x}"),
        _train(root, "--set", "data.options={n_patients: 1}"),
        _train(root, "--set", "trainer.monitor=nope"),
        _train(root, "--set", "data.val_fraction=1.5"),
        _train(root, "--set", "loss.name=xx"),
        _train(root, "--folds", "1"),
        _train(root, "--folds", "99"),
        _train(root, "--pretrained", str(img)),
        _train(root, "--pretrained", "imagenet", "--model", "simple_cnn"),
        _train(root, "--config", str(img)),
        _train(root, "--set", "="),
        _train(root, "--set", "a.b.c.d=1"),
        _train(root, "--task", "detection"),
        _train(root, "--data", "synthetic:/x/y"),
        _train(root, "--precision", "3"),
    ]
    return c


# ----------------------------------------------------------------------------- runner


def _worker(conn: Any, cache: str) -> None:
    os.environ["BRAINTUMOR_CACHE"] = cache
    # Native code (ONNX export's graph dump, C libraries) writes to fds 1 and 2 directly;
    # what a case prints through Python is captured below, the rest would only be noise.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    import torch

    torch.set_num_threads(1)
    from braintumor.cli import main

    while True:
        args = conn.recv()
        if args is None:
            return
        out, err = io.StringIO(), io.StringIO()
        code: Any = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:  # what the console script would print as a traceback
                err.write(traceback.format_exc())
                code = 1
        conn.send((code, err.getvalue()[-4000:]))


class _Worker:
    def __init__(self, ctx: Any, cache: str) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, cache), daemon=True)
        self.proc.start()

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)


def _classify(code: Any, err: str, timed_out: bool) -> str:
    if timed_out:
        return "hang"
    if "Traceback" in err or code not in (0, 1, 2):
        return "traceback"
    return {0: "ok", 1: "exit1", 2: "error_line"}[code]


def run_in_process(
    cases: list[list[str]], cache: str, timeout: float, workers: int = 2
) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    pool = [_Worker(ctx, cache) for _ in range(workers)]
    results: list[dict[str, Any]] = [{} for _ in cases]
    pending: Iterator[int] = iter(range(len(cases)))
    busy: dict[int, tuple[int, float]] = {}  # worker slot -> (case, start)
    try:
        for slot in range(workers):
            _dispatch(pool, slot, pending, busy, cases)
        while busy:
            time.sleep(0.005)
            for slot, (i, start) in list(busy.items()):
                w = pool[slot]
                if w.conn.poll():
                    code, err = w.conn.recv()
                    results[i] = _result(cases[i], code, err, time.monotonic() - start, False)
                elif time.monotonic() - start > timeout or not w.proc.is_alive():
                    dead = not w.proc.is_alive()
                    w.stop()
                    pool[slot] = _Worker(ctx, cache)
                    err = f"worker died (exit {w.proc.exitcode})" if dead else ""
                    results[i] = _result(cases[i], -9 if dead else None, err, timeout, not dead)
                else:
                    continue
                del busy[slot]
                _dispatch(pool, slot, pending, busy, cases)
    finally:
        for w in pool:
            with contextlib.suppress(Exception):
                w.conn.send(None)
            w.stop()
    return results


def _dispatch(
    pool: list[_Worker], slot: int, pending: Iterator[int], busy: dict, cases: list
) -> None:
    i = next(pending, None)
    if i is not None:
        pool[slot].conn.send(cases[i])
        busy[slot] = (i, time.monotonic())


def _result(args: list[str], code: Any, err: str, seconds: float, hung: bool) -> dict[str, Any]:
    outcome = _classify(code, err, hung)
    row: dict[str, Any] = {"args": args, "exit": code, "outcome": outcome, "s": round(seconds, 3)}
    if outcome in ("traceback", "hang", "exit1"):
        row["stderr_tail"] = err[-1500:]
    return row


def run_subprocesses(
    cases: list[list[str]], cache: str, timeout: float, parallel: int = 2
) -> list[dict[str, Any]]:
    env = {**os.environ, "BRAINTUMOR_CACHE": cache}

    def one(args: list[str]) -> dict[str, Any]:
        start = time.monotonic()
        try:
            p = subprocess.run(
                [sys.executable, "-m", "braintumor", *args], capture_output=True, text=True,
                timeout=timeout, env=env, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            return _result(args, p.returncode, p.stderr, time.monotonic() - start, False)
        except subprocess.TimeoutExpired:
            return _result(args, None, "", timeout, True)

    with ThreadPoolExecutor(parallel) as ex:
        return list(ex.map(one, cases))
