"""What differs between classification and segmentation, and nothing else.

The engine (:mod:`braintumor.engine.module`, :mod:`braintumor.engine.train`) is the
same for both tasks; a :class:`Task` supplies the default loss, how to read the
target from a batch, the metric that selects the best epoch, how raw logits
become metrics, and how logits become probabilities at prediction time.

Metrics are never averaged over batches: an evaluator accumulates the whole split
(``update`` per batch) and computes once (``compute``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from braintumor.errors import ConfigError
from braintumor.inference.predictor import probabilities
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


class Task(ABC):
    """The task-specific half of the engine."""

    name: ClassVar[str]
    default_loss: ClassVar[str]
    monitor: ClassVar[str]  # metric (without the ``val_`` prefix) that selects the best epoch
    monitor_mode: ClassVar[str]  # "max" or "min"
    headline: ClassVar[tuple[str, ...]]  # metrics printed at the end of training
    monitor_choices: ClassVar[tuple[str, ...]]  # validation metrics that may select the epoch

    def __init__(self, output_names: Sequence[str], threshold: float = 0.5) -> None:
        if not output_names:
            raise ConfigError(f"{self.name}: the data set defines no {self.outputs_word}")
        self.output_names = list(output_names)
        self.threshold = threshold

    outputs_word: ClassVar[str] = "outputs"

    @property
    def num_outputs(self) -> int:
        return len(self.output_names)

    @property
    @abstractmethod
    def loss_mode(self) -> str:
        """``multiclass``, ``binary`` or ``multilabel`` (passed to ``create_loss``)."""

    def build_loss(
        self, name: str | None, class_weights: Sequence[float] | None, label_smoothing: float
    ) -> nn.Module:
        from braintumor.losses import create_loss

        kwargs: dict[str, Any] = {"mode": self.loss_mode}
        if class_weights is not None:
            kwargs["class_weights"] = list(class_weights)
        if label_smoothing:
            kwargs["label_smoothing"] = float(label_smoothing)
        return create_loss(name or self.default_loss, **kwargs)

    @abstractmethod
    def target(self, batch: dict[str, Any]) -> Tensor:
        """The loss target of a batch."""

    @abstractmethod
    def evaluator(self, selecting: bool = False) -> Evaluator:
        """Full metrics for test; ``selecting`` (per-epoch validation) may skip costly
        metrics that do not select the checkpoint."""

    def train_evaluator(self) -> Evaluator:
        """Metrics tracked on the training batches (may be cheaper)."""
        return self.evaluator()

    @abstractmethod
    def postprocess(self, logits: Tensor) -> Tensor:
        """Logits -> probabilities."""


class ClassificationTask(Task):
    name = "classification"
    default_loss = "cross_entropy"
    monitor = "balanced_accuracy"
    monitor_mode = "max"
    headline = ("accuracy", "balanced_accuracy", "f1_macro", "auroc_macro", "ece")
    monitor_choices = (
        "balanced_accuracy",
        "accuracy",
        "f1_macro",
        "f1_weighted",
        "precision_macro",
        "recall_macro",
        "auroc_macro",
        "ece",
        "loss",
    )
    outputs_word = "classes"

    @property
    def loss_mode(self) -> str:
        return "multiclass"

    def target(self, batch: dict[str, Any]) -> Tensor:
        return batch["label"].long()

    def evaluator(self, selecting: bool = False) -> Evaluator:
        return ClassificationEvaluator(self.output_names)

    def postprocess(self, logits: Tensor) -> Tensor:
        return probabilities(self.name, logits)


class SegmentationTask(Task):
    name = "segmentation"
    default_loss = "dice_bce"
    monitor = "dice"
    monitor_mode = "max"
    headline = ("dice", "iou", "hd95", "precision", "recall")
    monitor_choices = (
        "dice",
        "dice_per_patient_mean",
        "iou",
        "iou_per_patient_mean",
        "miou",
        "hd95",
        "loss",
    )
    outputs_word = "mask channels"

    @property
    def loss_mode(self) -> str:
        # One sigmoid per mask channel: BraTS regions overlap (WT > TC > ET).
        return "binary" if self.num_outputs == 1 else "multilabel"

    def target(self, batch: dict[str, Any]) -> Tensor:
        return batch["mask"].float()

    def evaluator(self, selecting: bool = False) -> Evaluator:
        # HD95 (a distance transform per image and channel) only where it is reported
        # (test) or selects the checkpoint.
        with_hd95 = not selecting or self.monitor == "hd95"
        return SegmentationEvaluatorAdapter(self.output_names, self.threshold, with_hd95)

    def train_evaluator(self) -> Evaluator:
        return PooledDice(self.threshold)

    def postprocess(self, logits: Tensor) -> Tensor:
        return probabilities(self.name, logits)


# Sample counts in a metrics dict: bookkeeping, not something to log per epoch.
COUNT_KEYS = frozenset({"n", "n_patients"})

TASKS: dict[str, type[Task]] = {
    "classification": ClassificationTask,
    "segmentation": SegmentationTask,
}


# Validation metrics where lower is better; every other monitor is maximised.
LOWER_IS_BETTER = frozenset({"loss", "hd95", "ece", "fpr", "fnr"})


def check_monitor(task: str, monitor: str | None) -> None:
    """Fail early on ``trainer.monitor`` that the task does not log."""
    if monitor is None or task not in TASKS:
        return
    choices = TASKS[task].monitor_choices
    if monitor not in choices:
        raise ConfigError(
            f"unknown trainer.monitor {monitor!r} for {task}; use one of: {', '.join(choices)}"
        )


def create_task(
    name: str, output_names: Sequence[str], threshold: float = 0.5, monitor: str | None = None
) -> Task:
    """The task object for ``cfg.task``; ``monitor`` replaces its default selection metric."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; use one of: {', '.join(TASKS)}")
    check_monitor(name, monitor)
    task = TASKS[name](output_names, threshold)
    if monitor is not None:
        task.monitor = monitor
        task.monitor_mode = "min" if monitor in LOWER_IS_BETTER else "max"
    return task


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The plain numbers of a metrics dict (what can be logged per epoch)."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        out[k] = float(v)
    return out
