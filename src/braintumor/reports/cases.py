"""Example cases of a run for reports: best/worst segmentations, (mis)classifications.

Cases come from the run's own saved test split (``splits.json``), re-read from the
data set it was trained on; a few images are enough, so at most ``limit`` evenly
spaced test samples are predicted. Each case is one RGB tile with a caption.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from braintumor.data import create_format
from braintumor.data.splits import load_splits
from braintumor.explain import explain_image
from braintumor.figures.overlay import enlarge, heatmap_rgb, montage, overlay_rgb, with_legend
from braintumor.inference.predictor import Predictor
from braintumor.metrics.counts import confusion_counts, scores_from_counts

Case = tuple[np.ndarray, str]


def test_split_samples(run_dir: Path, card: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` evenly spaced samples of the run's saved test split."""

    fmt = create_format(card["data"]["spec"], **(card["data"].get("options") or {}))
    recs = load_splits(run_dir / "splits.json", fmt.records()).get("test", [])
    if len(recs) > limit:
        recs = [recs[i] for i in np.linspace(0, len(recs) - 1, limit).round().astype(int)]
    return [fmt.load(r) for r in recs]


def _dice(pred: np.ndarray, truth: np.ndarray) -> float:

    return float(np.nanmean(scores_from_counts(confusion_counts(pred, truth))["dice"]))


def segmentation_cases(run_dir: Path, n: int = 2, limit: int = 24) -> list[Case]:
    """The ``n`` best and ``n`` worst test slices with tumor by Dice: truth | prediction
    (| attention-gate map for ``attention_unet``)."""

    pred = Predictor.from_run(run_dir, "cpu")
    samples = [s for s in test_split_samples(run_dir, pred.card, limit * 4) if s["mask"].any()]
    samples = samples[:: max(1, len(samples) // limit)][:limit]
    if not samples:
        return []
    probs = pred.predict_images([s["image"] for s in samples])
    masks = [pred.masks(p) for p in probs]
    dice = [_dice(m, s["mask"]) for m, s in zip(masks, samples, strict=True)]
    order = np.argsort(dice)
    picks = [("best", i) for i in order[::-1][:n]] + [("worst", i) for i in order[:n]]
    names, gates = pred.names, pred.card["name"] == "attention_unet"
    cases, seen = [], set()
    for what, i in picks:
        if i in seen:  # few slices: best and worst overlap
            continue
        seen.add(i)
        s = samples[int(i)]
        tiles = [
            overlay_rgb(s["image"], s["mask"], names),
            overlay_rgb(s["image"], masks[i], names),
        ]
        extra = ""
        if gates:
            tiles.append(heatmap_rgb(s["image"], explain_image(pred, s["image"]).heat))
            extra = " | attention-gate map"
        cases.append(
            (
                with_legend(enlarge(montage(tiles)), names),
                f"{what}: Dice {dice[i]:.3f} ({s['path']}); truth | prediction{extra}",
            )
        )
    return cases


def classification_cases(run_dir: Path, n: int = 2, limit: int = 48) -> list[Case]:
    """The ``n`` most confident wrong and right test predictions: image | Grad-CAM
    (attention rollout for ``vit``) of the predicted class."""

    pred = Predictor.from_run(run_dir, "cpu")
    samples = test_split_samples(run_dir, pred.card, limit)
    if not samples:
        return []
    probs = np.asarray(pred.predict_images([s["image"] for s in samples]))
    guess, conf = probs.argmax(1), probs.max(1)
    truth = np.array([s["label"] for s in samples])
    names = pred.names
    cases = []
    for what, ok in (("most confident wrong", False), ("most confident right", True)):
        idx = [i for i in np.argsort(-conf) if (guess[i] == truth[i]) == ok][:n]
        for i in idx:
            s = samples[int(i)]
            ex = explain_image(pred, s["image"])
            tiles = [overlay_rgb(s["image"], None), heatmap_rgb(s["image"], ex.heat)]
            cases.append(
                (
                    enlarge(montage(tiles)),
                    f"{what}: true {names[truth[i]]}, predicted {names[guess[i]]} "
                    f"(p={conf[i]:.2f}); image | {ex.method} ({s['path']})",
                )
            )
    return cases
