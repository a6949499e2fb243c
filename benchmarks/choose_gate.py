"""The segmenter-as-gate's area threshold of a trained run, chosen on its VALIDATION split.

Runs trained with ``trainer.levers=val`` choose it when training ends and record it in
the model card (``inference.gate_area``, ``engine/levers.py``), so ``pipeline`` without
``--classifier`` uses it. For an older run this script applies the same choice
(:func:`braintumor.engine.levers.choose_gate`) at the run's own levers (TTA and component
size from its card) and prints the threshold to pass as ``pipeline --threshold``. The test
split is not read.

Example::

    python benchmarks/choose_gate.py runs/lgg_seg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _common import append_markdown, fmt, markdown_table, write_result


def main() -> None:
    from braintumor.data.dataset import SliceDataset
    from braintumor.engine.data import make_loader, open_format
    from braintumor.engine.evaluate import saved_split
    from braintumor.engine.levers import _LOGIT, choose_gate, postprocessed, with_tta
    from braintumor.engine.tasks import create_task
    from braintumor.inference.postprocess import Levers
    from braintumor.inference.runs import load_run

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = load_run(args.run)
    card, cfg = run.card, run.cfg
    if card["task"] != "segmentation":
        raise SystemExit(f"{args.run} is a {card['task']} run; give a segmentation run")
    task = create_task("segmentation", card["mask_channels"], card.get("threshold", 0.5),
                       cfg.trainer.monitor)  # fmt: skip
    data = open_format(card["data"]["spec"], card["data"].get("options"))
    records = saved_split(run.path, data.records(), "val")
    pre = card["preprocessing"]
    ds = SliceDataset(data, records, int(pre["image_size"]), int(pre["channels"]),
                      bool(pre["crop"]), neighbours=int(pre.get("neighbours", 0)))  # fmt: skip
    levers = Levers.from_card(card)
    model = run.model.eval()
    forward = with_tta(model, levers.tta)
    pairs = []
    with torch.no_grad():
        for b in make_loader(ds, cfg.data, shuffle=False):
            fg = torch.sigmoid(forward(b["image"]).float()) > task.threshold
            logits = torch.where(fg, _LOGIT, -_LOGIT)
            pairs.append((logits, {k: v for k, v in b.items() if k != "image"}))
    volumes = list(postprocessed(pairs, records, task.threshold, levers.min_component_voxels,
                                 levers.keep_largest))  # fmt: skip
    gate, rows = choose_gate(volumes, task, task.monitor, task.monitor_mode)
    write_result(f"choose_gate_{args.run.name}", {"run": str(args.run), "levers": levers.as_dict(),
                                                  "gate_area": gate, "table": rows})  # fmt: skip
    table = markdown_table(
        ["gate: area >=", f"val {task.monitor}", "val detection bal. acc"],
        [
            [
                "none (segmenter alone)" if r["gate_area"] == 0 else f"{r['gate_area']:g}",
                fmt(r[task.monitor]),
                fmt(r["detection"]),
            ]
            for r in rows
        ],  # fmt: skip
    )
    chosen = "none (the segmenter alone)" if gate is None else f"area >= {gate}"
    append_markdown(
        f"Segmenter gate chosen on val ({args.run.name})",
        table,
        f"Run levers from its card: tta={levers.tta}, min_component_voxels="
        f"{levers.min_component_voxels}. Chosen: {chosen}. Validation patients only. " + args.note,
    )
    print(f"gate chosen on val: {chosen}")


if __name__ == "__main__":
    main()
