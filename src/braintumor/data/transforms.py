"""Training augmentation: MONAI dictionary transforms on ``image`` and ``mask`` together.

Spatial transforms move the image (bilinear) and the mask (nearest, so it stays
binary) with the same random parameters; intensity transforms touch the image
only. Flips are left-right only: brains are roughly left-right symmetric, while
an up-down flip would move anatomy (e.g. the sella, where pituitary tumors sit)
somewhere no real scan has it. Evaluation uses no transform at all.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import torch
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
    RandScaleIntensityd,
    RandShiftIntensityd,
)

from braintumor.errors import ConfigError

TASKS = ("classification", "segmentation")


class Augment:
    """A MONAI pipeline made safe for DataLoader workers and plain tensors.

    MONAI transforms keep their own random state, which forked workers would all
    copy: each process therefore reseeds the pipeline once from ``torch.initial_seed()``
    (distinct per worker and per epoch). Outputs are plain tensors, not MetaTensors.
    The pipeline runs with one torch thread (restored afterwards).
    """

    def __init__(self, pipeline: Compose) -> None:
        self.pipeline = pipeline
        self._pid: int | None = None

    def __call__(self, item: dict[str, Any]) -> dict[str, Any]:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self.pipeline.set_random_state(seed=torch.initial_seed() % 2**32)
        # One intra-op thread: on a single small image, torch's thread pool only adds
        # synchronisation (measured 10x slower with 2 threads on a busy 2-core machine).
        # DataLoader workers already run with one thread; this covers num_workers=0.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            out = self.pipeline(dict(item))
        finally:
            torch.set_num_threads(threads)
        for key in ("image", "mask"):
            if isinstance(out.get(key), MetaTensor):
                out[key] = out[key].as_tensor()
        return out

    def __repr__(self) -> str:
        names = ", ".join(type(t).__name__ for t in self.pipeline.transforms)
        return f"Augment({names})"


def build_transforms(task: str, train: bool) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """Augmentation for ``task`` items (C x H x W tensors); ``None`` when not training.

    Train: left-right flip, small rotation (+-15 degrees) and zoom (+-10 %), intensity
    scale (+-10 %) and shift (+-0.05), mild Gaussian noise. The mask key is optional,
    so the same pipeline serves classification (no mask) and segmentation.
    """
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    if not train:
        return None
    both = ["image", "mask"]
    pipeline = Compose(
        [
            RandFlipd(keys=both, prob=0.5, spatial_axis=1, allow_missing_keys=True),
            RandAffined(
                keys=both,
                prob=0.5,
                rotate_range=math.radians(15),
                scale_range=(0.1, 0.1),
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
                allow_missing_keys=True,
            ),
            RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.05, prob=0.5),
            RandGaussianNoised(keys="image", prob=0.3, std=0.03),
        ]
    )
    return Augment(pipeline)
