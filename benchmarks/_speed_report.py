"""The summary of ``benchmarks/speed.py``: the issue's targets and the markdown tables."""

from __future__ import annotations

from typing import Any

from _common import append_markdown, fmt, markdown_table, write_result
from _speed_nets import INFER_VARIANTS, TRAIN_VARIANTS

PEER = "monai_BasicUNet_16_256"  # the reference every target is measured against (speed.peer_unet)


def _row(res: dict[str, Any], name: str) -> dict[str, Any]:
    return next((r for r in res.get("nets", []) if r["model"] == name), {})


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and met / not met."""
    out = []

    def add(what: str, value: float | None, goal: float, lower: bool = False) -> None:
        met = None if value is None else (value <= goal if lower else value >= goal)
        out.append({"target": what, "value": value, "goal": goal, "met": met})

    unet, peer, cnn = _row(res, "unet"), _row(res, PEER), _row(res, "custom_cnn")
    if unet and peer:
        best_train = max(unet.get(f"train_{v}") or 0 for v in TRAIN_VARIANTS)
        add("unet train / BasicUNet fp32 train", best_train / peer["train_fp32"], 2.0)
        add(
            "unet infer / BasicUNet fp32 infer",
            unet[f"infer_{unet['best_infer']}"] / peer["infer_fp32"],
            2.0,
        )
    if "engine" in res:
        # The engine against the raw loop of the same network at the same precision and
        # layout (the "lost 40%"), for fp32 and bf16+cl; and the default run
        # (precision auto: bf16 + channels-last for unet where the CPU has native bf16).
        eng, raw = res["engine"], res["raw"]
        fast = eng["bf16_cl"]["img_s"] if "bf16_cl" in eng else None  # None: no native bf16
        if fast is not None:
            add("engine / raw unet, both bf16+cl", fast / raw["unet_train_bf16_cl"], 0.8)
        add("engine / raw unet, both fp32", eng["fp32_nchw"]["img_s"] / raw["unet_train_fp32"], 0.8)
        if fast is not None:
            add("engine (bf16+cl) / BasicUNet fp32 raw loop", fast / raw["peer_train_fp32"], 1.6)
        add(
            "engine (default settings) / BasicUNet fp32 raw loop",
            eng["default"]["img_s"] / raw["peer_train_fp32"],
            1.6,
        )
        if "default_64_patients" in eng:  # a real epoch's length; default precision's raw loop
            bf16 = res.get("engine_default_precision") == "bf16-mixed"
            long = eng["default_64_patients"]
            add(
                f"engine (default, {long['n_train']} slices/epoch) / raw unet "
                + ("bf16+cl" if bf16 else "fp32"),
                long["img_s"] / raw["unet_train_bf16_cl" if bf16 else "unet_train_fp32"],
                0.8,
            )
    if "predict" in res:
        pr = res["predict"]
        add(
            f"predict {pr['default']['n']} PNG (phantom brain slices) / BasicUNet fp32 forward",
            pr["default"]["img_s"] / pr["peer_forward_img_s"],
            1.0,
        )
    if cnn:
        add("custom_cnn inference img/s (128 px)", cnn[f"infer_{cnn['best_infer']}"], 1500)
    if res.get("pipeline", {}).get("brats_155_slices_s") is not None:
        add(
            "pipeline, 155-slice BraTS case (s)",
            res["pipeline"]["brats_155_slices_s"],
            5.0,
            lower=True,
        )
    return out


def report(res: dict[str, Any], write: bool) -> None:
    tables = []
    if res.get("nets"):
        hdr = [
            "network",
            "GFLOP/img",
            "infer fp32",
            "cl",
            "bf16",
            "bf16+cl",
            "cl+fold",
            "bf16+cl+fold",
            "ORT",
            "compile",
            "best",
            "lat. b1 ms (fp32/best)",
            "train fp32",
            "cl",
            "bf16",
            "bf16+cl",
            "peak MB (train)",
            "GFLOP/s (best infer)",
            "% of peak",
            "max |Δ| bf16+cl",
        ]
        rows = [
            [
                r["model"],
                fmt(r["gflop_per_img"], 2),
                *(fmt(r.get(f"infer_{v}"), 1) for v in (*INFER_VARIANTS, "compile")),
                r["best_infer"],
                f"{r['latency_ms_fp32']:.1f}/{r['latency_ms_best']:.1f}",
                *(fmt(r.get(f"train_{v}"), 1) for v in TRAIN_VARIANTS),
                fmt(r["peak_mb_train_fp32"], 0),
                fmt(r["gflops_infer_best"], 1),
                fmt(100 * r["peak_share_infer"], 0),
                fmt(r.get("diff_bf16_cl"), 3),
            ]
            for r in res["nets"]
        ]
        tables.append(markdown_table(hdr, rows))
    if res.get("scaling"):
        tables.append(
            markdown_table(
                ["unet size", "batch", "variant", "infer img/s"],
                [
                    [r["size"], r["batch"], r["variant"], fmt(r["infer_img_s"], 1)]
                    for r in res["scaling"]
                ],
            )
        )
    if res.get("engine"):
        tables.append(
            markdown_table(
                ["engine run", "train imgs", "epochs", "fit s (best)", "img/s (best)", "every fit"],
                [
                    [
                        k,
                        v["n_train"],
                        v["epochs"],
                        fmt(v["train_seconds"], 1),
                        fmt(v["img_s"], 1),
                        ", ".join(fmt(r, 1) for r in v.get("all_img_s", [v["img_s"]])),
                    ]
                    for k, v in res["engine"].items()
                ],
            )
        )
    tgt = markdown_table(
        ["target", "measured", "goal", "met"],
        [
            [
                t["target"],
                fmt(t["value"], 2),
                t["goal"],
                {True: "yes", False: "NO", None: "–"}[t["met"]],
            ]
            for t in res["targets"]
        ],
    )
    tables.append(tgt)
    other = {
        k: res[k]
        for k in ("matmul_peak_gflops", "raw", "predict", "pipeline", "seconds")
        if k in res
    }
    print("\n\n".join(tables))
    print(other)
    if write:
        name = "speed_quick" if res["quick"] else "speed_partial" if res.get("partial") else "speed"
        name += f"_{res['tag']}" if res.get("tag") else ""
        path = write_result(name, res)
        notes = (
            f"Matmul peak GFLOP/s: {fmt(res['matmul_peak_gflops']['fp32'], 0)} fp32, "
            f"{fmt(res['matmul_peak_gflops']['bf16'], 0)} bf16. Throughput in img/s at batch "
            f"{res['nets'][0]['batch'] if res.get('nets') else '-'}; other figures: {other}. "
            f"Raw numbers: `{path.relative_to(path.parents[2])}`."
        )
        title = "Speed" + (" (quick smoke run)" if res["quick"] else "")
        title += f" (partial: {res['partial']})" if res.get("partial") else ""
        title += f" [{res['tag']}]" if res.get("tag") else ""
        append_markdown(title, "\n\n".join(tables), notes)
