"""From ``cfg.data`` to DataLoaders: format -> records -> patient splits -> datasets.

Geometry is decided here once and written into the model card, so evaluation and
prediction prepare images exactly as training did:

- channels: ``cfg.data.channels`` or the format's natural channel count;
- crop: ``cfg.data.crop``; when unset, classification crops the margins around the
  head and segmentation does not. A segmentation model must map its mask back onto
  the input pixels at prediction time; pad-to-square + resize is invertible, a crop
  box found by a heuristic is not reproducible from the output, so segmentation
  with ``crop=true`` is refused.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, WeightedRandomSampler

from braintumor.config import Config, DataConfig
from braintumor.data import DatasetFormat, Record, create_format
from braintumor.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")


def resolve_crop(task: str, crop: bool | None) -> bool:
    """The crop setting actually used (see the module docstring)."""
    if crop is None:
        return task == "classification"
    if crop and task == "segmentation":
        raise ConfigError(
            "data.crop=true is not supported for segmentation: predicted masks could not be "
            "mapped back onto the input pixels; set data.crop=false (or leave it unset)"
        )
    return bool(crop)


def output_names(task: str, fmt: DatasetFormat) -> list[str]:
    """Classes (classification) or mask channels (segmentation) of a format."""
    if task == "segmentation":
        names = list(fmt.mask_channels)
        if not names:
            raise DataError(
                f"data format {fmt.name!r} has no masks, so it cannot train segmentation; "
                "use --task classification or a format with masks"
            )
        return names
    return list(fmt.classes)


def subsample(records: list[Record], limit: int | None, seed: int) -> list[Record]:
    """At most ``limit`` records, stratified by label, seeded (order preserved)."""
    if limit is None or limit >= len(records):
        return records
    if limit < 1:
        raise ConfigError(f"data.limit must be >= 1, got {limit}")
    groups: dict[int, list[int]] = defaultdict(list)
    for i, rec in enumerate(records):
        groups[rec.label].append(i)
    rng = random.Random(seed)
    n = len(records)
    # Largest-remainder apportionment keeps every class's share and the exact total.
    quotas = {k: limit * len(v) / n for k, v in groups.items()}
    take = {k: int(q) for k, q in quotas.items()}
    short = limit - sum(take.values())
    for k in sorted(quotas, key=lambda k: quotas[k] - take[k], reverse=True)[:short]:
        take[k] += 1
    keep: list[int] = []
    for k, idx in groups.items():
        keep += rng.sample(idx, take[k])
    return [records[i] for i in sorted(keep)]


def class_weights(records: list[Record], num_classes: int) -> list[float]:
    """Inverse-frequency weights ``n / (C * n_c)`` from the training records."""
    counts = [0] * num_classes
    for rec in records:
        if 0 <= rec.label < num_classes:
            counts[rec.label] += 1
    n = sum(counts)
    return [n / (num_classes * c) if c else 0.0 for c in counts]


@dataclass
class DataBundle:
    """Everything the engine needs from the data, for one split assignment."""

    fmt: DatasetFormat
    task: str
    image_size: int
    channels: int
    crop: bool
    names: list[str]  # classes or mask channels
    splits: dict[str, list[Record]]
    cfg: DataConfig

    def dataset(self, split: str, train: bool = False) -> Any:
        from braintumor.data.dataset import SliceDataset

        transform = None
        if train and self.cfg.augment:
            from braintumor.data.transforms import build_transforms

            transform = build_transforms(
                self.task,
                True,
                intensity=self.cfg.intensity_aug,
                rotate_degrees=self.cfg.rotate_degrees,
                scale_range=self.cfg.scale_range,
                channel_dropout=self.cfg.channel_dropout,
                reference_channel=self.fmt.flair_channel,
                n_native=self.channels,
            )
        return SliceDataset(
            self.fmt,
            self.splits[split],
            image_size=self.image_size,
            channels=self.channels,
            crop=self.crop,
            cache_dir=self.cfg.cache_dir,
            transform=transform,
            cache=self.cfg.cache,
            neighbours=self.cfg.neighbours,
        )

    @property
    def in_channels(self) -> int:
        """Channels the model sees: the image's plus the 2.5D neighbours' FLAIR."""
        return self.channels + 2 * self.cfg.neighbours

    def loader(self, split: str, train: bool = False) -> DataLoader:
        if not self.splits.get(split):
            fix = (
                "lower data.val_fraction / data.test_fraction"
                if split == "train"
                else f"raise data.{split}_fraction"
            )
            raise DataError(
                f"the {split} split of {self.cfg.spec} is empty "
                f"({sum(len(v) for v in self.splits.values())} samples in all); "
                f"use more data (data.limit, format options) or {fix}"
            )
        ds = self.dataset(split, train)
        sampler = None
        if train and self.cfg.oversample_tumor != 1.0:
            sampler = tumor_sampler(ds.has_tumor(), self.cfg.oversample_tumor)
        return make_loader(ds, self.cfg, shuffle=train, sampler=sampler)


def tumor_sampler(has_tumor: np.ndarray, factor: float) -> WeightedRandomSampler:
    """Draw tumor slices ``factor`` times as often as the others, one epoch's worth.

    LGG has two empty slices for each tumor slice, and most of the per-patient Dice
    lost comes from small tumors missed entirely: more tumor slices per epoch.
    """
    weights = torch.where(torch.as_tensor(has_tumor, dtype=torch.bool), factor, 1.0)
    return WeightedRandomSampler(weights.double(), num_samples=len(weights), replacement=True)


def make_loader(
    dataset: Any, cfg: DataConfig, shuffle: bool = False, sampler: Any = None
) -> DataLoader:
    """A DataLoader with the configured batch size and workers (``sampler`` replaces
    shuffling)."""
    from braintumor.data.dataset import collate

    workers = max(0, int(cfg.num_workers))
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        collate_fn=collate,  # SliceDataset builds whole batches (__getitems__)
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(),
        # A last batch of one breaks BatchNorm in training; evaluation keeps every sample.
        drop_last=shuffle and len(dataset) > cfg.batch_size,
    )


def open_format(spec: str, options: dict[str, Any] | None = None) -> DatasetFormat:
    """``create_format`` with the options of a config."""
    return create_format(spec, **(options or {}))


def build_data(
    cfg: Config, splits: dict[str, list[Record]] | None = None, fmt: DatasetFormat | None = None
) -> DataBundle:
    """Open the data, subsample, split by patient (unless ``splits`` is given)."""
    fmt = fmt or open_format(cfg.data.spec, cfg.data.options)
    if cfg.task not in fmt.tasks:
        raise ConfigError(
            f"data format {fmt.name!r} does not support task {cfg.task!r} "
            f"(it supports: {', '.join(fmt.tasks)})"
        )
    names = output_names(cfg.task, fmt)
    if splits is None:
        from braintumor.data.splits import make_splits

        records = subsample(fmt.records(), cfg.data.limit, cfg.seed)
        splits = make_splits(
            records,
            val_fraction=cfg.data.val_fraction,
            test_fraction=cfg.data.test_fraction,
            seed=cfg.seed,
        )
    return DataBundle(
        fmt=fmt,
        task=cfg.task,
        image_size=cfg.data.image_size,
        channels=cfg.data.channels or fmt.natural_channels,
        crop=resolve_crop(cfg.task, cfg.data.crop),
        names=names,
        splits={k: list(splits.get(k, [])) for k in SPLITS},
        cfg=cfg.data,
    )
