"""Eager fp32 vs the auto fast path through ``Predictor`` (img/s, steady state).

    PYTHONPATH=src python benchmarks/infer_auto.py [--size 128] [--n 64] [--models unet,...]

Random-initialised networks on smooth random images: an untrained segmenter's logits sit
near 0, where bf16 flips masks, so the guard may refuse bf16 that a trained run passes.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch
from tests.inference._cards import card_for

from braintumor.inference.predictor import Predictor
from braintumor.models.registry import create_model, model_entry


def img_per_s(pred: Predictor, images: list[np.ndarray], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        pred.predict_images(images, batch_size=16)
        best = min(best, time.perf_counter() - start)
    return len(images) / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--models", default="unet,segresnet,custom_cnn")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="  %(message)s")
    torch.set_num_threads(2)
    low = torch.rand(args.n, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    up = torch.nn.functional.interpolate(low, size=(args.size, args.size), mode="bicubic")
    images = list(up.clamp(0, 1).numpy())
    head = "network | eager fp32 NCHW | eager fp32, card layout | auto | auto/eager | chose"
    print(f"| {head} | calib. s |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models.split(","):
        torch.manual_seed(0)
        task = model_entry(name).task
        n_out = 1 if task == "segmentation" else 3
        card = card_for(task, name, 1, n_out, args.size)
        model = create_model(name, in_channels=1, num_classes=n_out)
        eager = Predictor(model, card, device="cpu", backend="eager", precision="32-true")
        fp32 = img_per_s(eager, images)  # the card's layout: channels-last for conv nets
        card["runtime"]["memory_format"] = "contiguous"
        nchw = img_per_s(Predictor(model, card, device="cpu", backend="eager"), images)
        card["runtime"]["memory_format"] = "auto"
        auto = Predictor(model, card, device="cpu", backend="auto")
        start = time.perf_counter()
        auto.calibrate(np.stack([auto.preprocess(im) for im in images[:16]]))
        calib = time.perf_counter() - start
        fast = img_per_s(auto, images)
        row = [name, f"{nchw:.0f}", f"{fp32:.0f}", f"{fast:.0f}", f"{fast / fp32:.2f}x"]
        print("| " + " | ".join([*row, auto.runtime, f"{calib:.2f}"]) + " |")


if __name__ == "__main__":
    main()
