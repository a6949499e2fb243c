"""The evaluators of the engine: what accumulates a split's predictions into its metrics.

Metrics are never averaged over batches: an :class:`Evaluator` accumulates the
whole split (``update`` per batch) and computes once (``compute``); its
``state`` / ``load_states`` gather the accumulation of several DDP ranks, with the
samples that a distributed sampler repeats counted once. A
:class:`~braintumor.engine.tasks.Task` says which evaluator its task uses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from braintumor.metrics.classification import classification_metrics


class Evaluator(ABC):
    """Accumulates predictions over a split, then computes its metrics once."""

    @abstractmethod
    def update(self, logits: Tensor, batch: dict[str, Any]) -> None: ...

    @abstractmethod
    def compute(self) -> dict[str, Any]: ...

    @abstractmethod
    def reset(self) -> None: ...

    def state(self) -> dict[str, Any]:
        """What has been accumulated, picklable (sent between DDP ranks)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be gathered across processes")

    def load_states(self, states: Sequence[dict[str, Any]]) -> None:
        """Replace the accumulated state by the union of ``states`` (one per rank)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be gathered across processes")


def _keys(batch: dict[str, Any], n: int) -> list[str | None]:
    """Sample keys of a batch (``path``): they de-duplicate what DDP shards repeat."""
    keys = batch.get("path")
    return [str(k) for k in keys] if keys is not None else [None] * n


def _first_seen(keys: Sequence[str | None], seen: set[str]) -> list[int]:
    """Indices of keys not seen before (updates ``seen``); a None key is always kept."""
    keep = [i for i, k in enumerate(keys) if k is None or k not in seen]
    seen.update(k for k in keys if k is not None)
    return keep


class ClassificationEvaluator(Evaluator):
    """Collects softmax probabilities and labels; :func:`classification_metrics` at the end."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)
        self.reset()

    def reset(self) -> None:
        self._probs: list[Tensor] = []
        self._targets: list[Tensor] = []
        self._keys: list[str | None] = []

    def update(self, logits: Tensor, batch: dict[str, Any]) -> None:
        self._probs.append(torch.softmax(logits.detach().float(), dim=1).cpu())
        self._targets.append(batch["label"].detach().cpu().long())
        self._keys.extend(_keys(batch, logits.shape[0]))

    def state(self) -> dict[str, Any]:
        probs, targets = self.gathered()
        return {"probs": probs, "targets": targets, "keys": list(self._keys)}

    def load_states(self, states: Sequence[dict[str, Any]]) -> None:
        self.reset()
        seen: set[str] = set()
        for st in states:
            keep = _first_seen(st["keys"], seen)
            self._probs.append(st["probs"][keep].float().cpu())
            self._targets.append(st["targets"][keep].long().cpu())
            self._keys.extend(st["keys"][i] for i in keep)

    def gathered(self) -> tuple[Tensor, Tensor]:
        """All probabilities (N x C) and targets (N) seen since the last reset."""
        c = len(self.class_names)
        probs = torch.cat(self._probs) if self._probs else torch.zeros(0, c)
        targets = torch.cat(self._targets) if self._targets else torch.zeros(0, dtype=torch.long)
        return probs, targets

    def compute(self) -> dict[str, Any]:
        probs, targets = self.gathered()
        return classification_metrics(probs.numpy(), targets.numpy(), self.class_names)


class SegmentationEvaluatorAdapter(Evaluator):
    """Thresholds sigmoid probabilities and feeds :class:`SegmentationEvaluator` per batch."""

    def __init__(
        self, channel_names: Sequence[str], threshold: float, with_hd95: bool = True
    ) -> None:
        from braintumor.metrics.segmentation import SegmentationEvaluator

        self.threshold = threshold
        self.inner = SegmentationEvaluator(list(channel_names), with_hd95=with_hd95)

    def reset(self) -> None:
        self.inner.reset()

    def update(self, logits: Tensor, batch: dict[str, Any]) -> None:
        pred = torch.sigmoid(logits.detach().float()) > self.threshold
        target = batch["mask"].detach() > 0.5
        n = logits.shape[0]
        self.inner.update(pred.cpu(), target.cpu(), list(batch["patient_id"]), _keys(batch, n))

    def state(self) -> dict[str, Any]:
        return self.inner.state()

    def load_states(self, states: Sequence[dict[str, Any]]) -> None:
        self.inner.load_states(states)

    def compute(self) -> dict[str, Any]:
        return dict(self.inner.compute())


class PooledDice(Evaluator):
    """Dice pooled over every pixel of the epoch: a cheap training-set signal.

    Used for the *training* curve only (on augmented data, per-patient aggregation
    and HD95 would cost more than they tell); validation and test use the full
    :class:`SegmentationEvaluatorAdapter`.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.reset()

    def reset(self) -> None:
        self._tp = self._fp = self._fn = 0.0

    def update(self, logits: Tensor, batch: dict[str, Any]) -> None:
        pred = torch.sigmoid(logits.detach().float()) > self.threshold
        target = batch["mask"].detach() > 0.5
        tp = int((pred & target).sum())
        self._tp += tp
        self._fp += int(pred.sum()) - tp
        self._fn += int(target.sum()) - tp

    def state(self) -> dict[str, Any]:
        return {"tp": self._tp, "fp": self._fp, "fn": self._fn}

    def load_states(self, states: Sequence[dict[str, Any]]) -> None:
        # Sums: a repeated padding sample counts twice, which a training curve tolerates.
        self._tp = sum(st["tp"] for st in states)
        self._fp = sum(st["fp"] for st in states)
        self._fn = sum(st["fn"] for st in states)

    def compute(self) -> dict[str, Any]:
        den = 2 * self._tp + self._fp + self._fn
        return {"dice_pooled": 2 * self._tp / den if den else 1.0}
