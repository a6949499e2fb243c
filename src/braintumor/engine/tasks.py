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


class ClassificationEvaluator(Evaluator):
    """Collects softmax probabilities and labels; :func:`classification_metrics` at the end."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)
        self.reset()

    def reset(self) -> None:
        self._probs: list[Tensor] = []
        self._targets: list[Tensor] = []

    def update(self, logits: Tensor, batch: dict[str, Any]) -> None:
        self._probs.append(torch.softmax(logits.detach().float(), dim=1).cpu())
        self._targets.append(batch["label"].detach().cpu().long())

    def gathered(self) -> tuple[Tensor, Tensor]:
        """All probabilities (N x C) and targets (N) seen since the last reset."""
        c = len(self.class_names)
        probs = torch.cat(self._probs) if self._probs else torch.zeros(0, c)
        targets = torch.cat(self._targets) if self._targets else torch.zeros(0, dtype=torch.long)
        return probs, targets

    def replace(self, probs: Tensor, targets: Tensor) -> None:
        """Replace the accumulated state (e.g. by what all DDP ranks gathered)."""
        self._probs, self._targets = [probs.detach().float().cpu()], [targets.detach().cpu().long()]

    def compute(self) -> dict[str, Any]:
        probs, targets = self.gathered()
        return classification_metrics(probs.numpy(), targets.numpy(), self.class_names)


class SegmentationEvaluatorAdapter(Evaluator):
    """Thresholds sigmoid probabilities and feeds :class:`SegmentationEvaluator` per batch."""

    def __init__(self, channel_names: Sequence[str], threshold: float) -> None:
        from braintumor.metrics.segmentation import SegmentationEvaluator

        self.threshold = threshold
        self.inner = SegmentationEvaluator(list(channel_names))

    def reset(self) -> None:
        self.inner.reset()

    def update(self, logits: Tensor, batch: dict[str, Any]) -> None:
        pred = torch.sigmoid(logits.detach().float()) > self.threshold
        target = batch["mask"].detach() > 0.5
        self.inner.update(pred.cpu(), target.cpu(), list(batch["patient_id"]))

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
        self._tp += float((pred & target).sum())
        self._fp += float((pred & ~target).sum())
        self._fn += float((~pred & target).sum())

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
    def evaluator(self) -> Evaluator:
        """Full metrics for validation and test."""

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

    def evaluator(self) -> Evaluator:
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

    def evaluator(self) -> Evaluator:
        return SegmentationEvaluatorAdapter(self.output_names, self.threshold)

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
