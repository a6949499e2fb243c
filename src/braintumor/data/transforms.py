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

import numpy as np
import torch
from monai.data import MetaTensor, get_track_meta, set_track_meta
from monai.transforms import (
    Compose,
    MapTransform,
    RandAdjustContrastd,
    RandFlipd,
    Randomizable,
    RandScaleIntensityd,
    RandShiftIntensityd,
)

from braintumor.data.fast_augment import RandAffine2d, RandGaussianNoise
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
        # No MetaTensor bookkeeping either: nothing inverts these transforms, and copying
        # metadata was a tenth of the augmentation's time (profile in BENCHMARKS.md).
        threads, track = torch.get_num_threads(), get_track_meta()
        torch.set_num_threads(1)
        set_track_meta(False)
        try:
            out = self.pipeline(dict(item))
        finally:
            torch.set_num_threads(threads)
            set_track_meta(track)
        for key in ("image", "mask"):
            if isinstance(out.get(key), MetaTensor):
                out[key] = out[key].as_tensor()
        return out

    def _random_states(self) -> list[np.random.RandomState]:
        """Every random state of the pipeline (nested transforms keep their own)."""
        found: dict[int, np.random.RandomState] = {}

        def walk(obj: Any, depth: int) -> None:
            if isinstance(obj, np.random.RandomState):
                found.setdefault(id(obj), obj)
            elif depth < 6 and isinstance(obj, list | tuple):
                for item in obj:
                    walk(item, depth + 1)
            elif depth < 6 and (
                isinstance(obj, Randomizable) or type(obj).__module__.startswith("monai.")
            ):
                for value in vars(obj).values():
                    walk(value, depth + 1)

        walk(self.pipeline, 0)
        return list(found.values())

    def state_dict(self) -> dict[str, Any]:
        """The random states, so a resumed run draws the same augmentations (tensors only)."""
        if self._pid != os.getpid():
            return {"seeded": False, "states": []}
        states = []
        for r in self._random_states():
            _, keys, pos, has_gauss, gauss = r.get_state()
            states.append([torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss])
        return {"seeded": True, "states": states}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state.get("seeded"):
            self._pid = None  # reseed on first use, as a fresh run does
            return
        self._pid = os.getpid()
        for r, (keys, pos, has_gauss, gauss) in zip(
            self._random_states(), state["states"], strict=True
        ):
            r.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, gauss))

    def __repr__(self) -> str:
        names = ", ".join(type(t).__name__ for t in self.pipeline.transforms)
        return f"Augment({names})"


class ReplaceWithReference(Randomizable, MapTransform):
    """Replace each other channel by the reference (FLAIR) channel with probability ``prob``.

    Some LGG cases lack the pre- or post-contrast sequence, and the published TIFFs
    then repeat FLAIR in its place; a model that never saw that learns to rely on
    channels that may be copies. Only the first ``n_native`` channels are touched
    (2.5D neighbour channels stay as they are).
    """

    def __init__(self, prob: float, reference: int, n_native: int, key: str = "image") -> None:
        MapTransform.__init__(self, [key])
        self.prob, self.reference, self.n_native, self.key = prob, reference, n_native, key

    def __call__(self, data: dict[str, Any]) -> dict[str, Any]:
        out = dict(data)
        image = out[self.key]
        ref = min(self.reference, image.shape[0] - 1)
        others = [c for c in range(min(self.n_native, image.shape[0])) if c != ref]
        chosen = [c for c in others if self.R.random_sample() < self.prob]
        if chosen:
            image = image.clone() if isinstance(image, torch.Tensor) else np.array(image)
            for c in chosen:
                image[c] = image[ref]
            out[self.key] = image
        return out


def intensity_transforms() -> list[Any]:
    """Stronger intensity augmentation: gamma, contrast and brightness over a wide range.

    One held-out LGG scan is about 5x darker than the others; the scale factor goes
    down to 0.2 so such a scan is inside what training saw.
    """
    return [
        RandAdjustContrastd(keys="image", prob=0.3, gamma=(0.7, 1.5)),
        RandScaleIntensityd(keys="image", factors=(-0.8, 0.3), prob=0.3),
    ]


def rotation_ok(degrees: float) -> bool:
    """``data.rotate_degrees`` is valid: finite, in [0, 180]."""
    return math.isfinite(degrees) and 0 <= degrees <= 180


def zoom_ok(fraction: float) -> bool:
    """``data.scale_range`` is valid: finite, in [0, 1)."""
    return math.isfinite(fraction) and 0 <= fraction < 1


def build_transforms(
    task: str,
    train: bool,
    *,
    intensity: bool = False,
    rotate_degrees: float = 15.0,
    scale_range: float = 0.1,
    channel_dropout: float = 0.0,
    reference_channel: int = 0,
    n_native: int = 0,
) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """Augmentation for ``task`` items (C x H x W tensors); ``None`` when not training.

    Train: left-right flip, rotation (+-``rotate_degrees``, default 15) and zoom
    (+-``scale_range``, default 10 %) on half the samples, intensity
    scale (+-10 %) and shift (+-0.05), mild Gaussian noise. The mask key is optional,
    so the same pipeline serves classification (no mask) and segmentation.
    ``intensity`` adds :func:`intensity_transforms`; ``channel_dropout`` > 0 adds
    :class:`ReplaceWithReference` on the first ``n_native`` channels.
    """
    if task not in TASKS:
        raise ConfigError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")
    if not rotation_ok(rotate_degrees) or not zoom_ok(scale_range):
        raise ConfigError(
            f"data.rotate_degrees={rotate_degrees} / data.scale_range={scale_range} out of "
            "range: rotate_degrees must be in [0, 180] and scale_range in [0, 1)"
        )
    if not train:
        return None
    both = ["image", "mask"]
    extra: list[Any] = intensity_transforms() if intensity else []
    if channel_dropout > 0:
        extra.append(ReplaceWithReference(channel_dropout, reference_channel, n_native))
    pipeline = Compose(
        [
            *extra,
            RandFlipd(keys=both, prob=0.5, spatial_axis=1, allow_missing_keys=True),
            RandAffine2d(
                keys=both,
                prob=0.5,
                rotate_range=math.radians(rotate_degrees),
                scale_range=(scale_range, scale_range),
                modes=("bilinear", "nearest"),
            ),
            RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.05, prob=0.5),
            RandGaussianNoise(keys="image", prob=0.3, std=0.03),
        ]
    )
    return Augment(pipeline)
