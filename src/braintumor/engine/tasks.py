"""What differs between classification and segmentation, and nothing else.

The engine (:mod:`braintumor.engine.module`, :mod:`braintumor.engine.train`) is the
same for both tasks; a :class:`Task` supplies the default loss, how to read the
target from a batch, the metric that selects the best epoch, how raw logits
become metrics, and how logits become probabilities at prediction time.

The evaluators that accumulate a split into its metrics are in
:mod:`braintumor.engine.evaluators` (re-exported here).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from braintumor.engine.evaluators import (
    ClassificationEvaluator,
    Evaluator,
    PooledDice,
    SegmentationEvaluatorAdapter,
)
from braintumor.errors import ConfigError
from braintumor.inference.predictor import probabilities

__all__ = [
    "COUNT_KEYS",
    "LOWER_IS_BETTER",
    "TASKS",
    "ClassificationEvaluator",
    "ClassificationTask",
    "Evaluator",
    "PooledDice",
    "SegmentationEvaluatorAdapter",
    "SegmentationTask",
    "Task",
    "check_monitor",
    "create_task",
    "scalar_metrics",
]


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
