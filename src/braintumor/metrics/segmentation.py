"""Segmentation metrics in two stages: per-image counts, then an explicit reduction.

Stage 1 (:mod:`braintumor.metrics.counts`): for every image and mask channel,
:func:`confusion_counts` gives the pixel counts tp, fp, fn, tn of a *binarised*
prediction against the truth, and :func:`hd95` the 95th-percentile Hausdorff
distance between their boundaries. Stage 2 (:func:`scores_from_counts`,
:class:`SegmentationEvaluator`, here): scores from the counts and their means.
Nothing else is stored, so evaluation is memory-light. Masks are binarised first
(:mod:`braintumor.metrics.masks`: :func:`logits_to_masks`, :func:`brats_regions`).

Empty masks (common: most brain slices contain no tumour):

- A ratio whose denominator is 0 takes its *perfect* value (1; 0 for the error
  rates FPR and FNR) when the image has no error in that channel (truth and
  prediction both empty), and is otherwise *undefined*: NaN, left out of the
  means and counted in ``undefined``. So Dice and IoU are always defined (1 when
  both are empty, 0 when exactly one is empty); precision is undefined for an
  empty prediction on a non-empty truth, recall for a non-empty prediction on an
  empty truth (Dice is 0 in both cases and shows the error).
- HD95 is 0 when both are empty. When exactly one is empty there is no boundary
  to measure: by default (``hd95_empty="exclude"``) it is NaN, left out of the
  mean and counted in ``undefined["hd95"]``; ``hd95_empty="diagonal"`` instead
  scores it as the image diagonal (the worst possible distance), as BraTS does
  with its fixed penalty. Distances are in pixels, or in mm when ``spacing``
  (row, column) is given.

Aggregation (:meth:`SegmentationEvaluator.compute`): per channel, the mean over
all images (``dice``, ``iou``, ...); per patient, the counts of all slices of a
patient summed into one volume and scored once (``dice_per_patient_mean``, the
figure Buda et al. report for LGG), then the mean over patients; the top-level
numbers are the unweighted mean of the per-channel values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from braintumor.metrics.counts import (
    METRICS,
    ArrayLike,
    _as_bool,
    confusion_counts,
    hd95,
    scores_from_counts,
)
from braintumor.metrics.masks import brats_regions, logits_to_masks

# Stage 1 and the mask helpers live in counts.py and masks.py; their names stay
# importable from here, the module that has always offered them.
__all__ = [
    "METRICS",
    "ArrayLike",
    "SegmentationEvaluator",
    "brats_regions",
    "confusion_counts",
    "hd95",
    "logits_to_masks",
    "scores_from_counts",
]


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _mean(values: np.ndarray) -> float | None:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else None


class SegmentationEvaluator:
    """Accumulates per-image counts and HD95 over batches; reduces once in :meth:`compute`.

    Args:
        channel_names: one name per mask channel, e.g. ``["tumor"]`` or ``["WT", "TC", "ET"]``.
        spacing: (row, column) pixel size in mm for HD95; pixels when None.
        hd95_empty: rule for HD95 when exactly one mask is empty (see module docstring).
        with_hd95: False skips HD95 (a distance transform per image, the one costly
            metric): per-epoch validation computes it only when it selects the checkpoint.
    """

    def __init__(
        self,
        channel_names: Sequence[str],
        spacing: Sequence[float] | None = None,
        hd95_empty: str = "exclude",
        with_hd95: bool = True,
    ) -> None:
        if hd95_empty not in ("exclude", "diagonal"):
            raise ValueError(f"hd95_empty must be 'exclude' or 'diagonal', got {hd95_empty!r}")
        self.channel_names = list(channel_names)
        self.spacing = spacing
        self.hd95_empty = hd95_empty
        self.with_hd95 = with_hd95
        self.metrics = METRICS if with_hd95 else tuple(m for m in METRICS if m != "hd95")
        self.reset()

    def reset(self) -> None:
        self._counts: list[np.ndarray] = []  # B x K x 4 per batch
        self._hd95: list[np.ndarray] = []  # B x K per batch
        self._patients: list[str] = []
        self._keys: list[str | None] = []  # sample keys: DDP shards overlap, keys dedupe them
        self._named = False  # True once real patient ids were given

    def state(self) -> dict[str, Any]:
        """Everything accumulated so far, picklable: what one DDP rank sends the others."""
        k = len(self.channel_names)
        return {
            "counts": np.concatenate(self._counts) if self._counts else np.zeros((0, k, 4), int),
            "hd95": np.concatenate(self._hd95) if self._hd95 else np.zeros((0, k)),
            "patients": list(self._patients),
            "keys": list(self._keys),
            "named": self._named,
        }

    def load_states(self, states: Sequence[dict[str, Any]]) -> None:
        """Replace the accumulated state by the union of ``states`` (one per rank).

        A distributed sampler pads the last shard with repeated samples; an image
        whose key was already seen is dropped, so every image counts once.
        """
        self.reset()
        seen: set[str] = set()
        for st in states:
            keep = [i for i, key in enumerate(st["keys"]) if key is None or key not in seen]
            seen.update(k for k in st["keys"] if k is not None)
            if not keep:
                continue
            self._counts.append(np.asarray(st["counts"])[keep])
            self._hd95.append(np.asarray(st["hd95"])[keep])
            self._patients.extend(st["patients"][i] for i in keep)
            self._keys.extend(st["keys"][i] for i in keep)
            self._named = self._named or bool(st["named"])

    def update(
        self,
        pred_bin: ArrayLike,
        target: ArrayLike,
        patient_ids: Sequence[str] | None = None,
        keys: Sequence[str] | None = None,
    ) -> None:
        """Add a batch of binary masks B x K x H x W; ``patient_ids`` groups slices into volumes.

        ``keys`` name the images (unique per sample) so that states gathered from
        several processes can be de-duplicated (:meth:`load_states`).
        """
        p, t = _as_bool(pred_bin, "prediction"), _as_bool(target, "target")
        if p.ndim != 4 or p.shape != t.shape or p.shape[1] != len(self.channel_names):
            raise ValueError(
                f"expected prediction and target B x {len(self.channel_names)} x H x W, "
                f"got {p.shape} and {t.shape}"
            )
        b = p.shape[0]
        if patient_ids is None:  # every image is its own "patient"
            patient_ids = [f"image{len(self._patients) + i}" for i in range(b)]
        else:
            self._named = True
        if len(patient_ids) != b:
            raise ValueError(f"{len(patient_ids)} patient ids for a batch of {b} images")
        self._counts.append(confusion_counts(p, t))
        if self.with_hd95:
            hd = [
                [hd95(p[i, k], t[i, k], self.spacing, self.hd95_empty) for k in range(p.shape[1])]
                for i in range(b)
            ]
            self._hd95.append(np.asarray(hd, dtype=np.float64).reshape(b, p.shape[1]))
        else:
            self._hd95.append(np.full((b, p.shape[1]), np.nan))
        self._patients.extend(str(x) for x in patient_ids)
        self._keys.extend([None] * b if keys is None else [str(k) for k in keys])

    def per_image(self) -> list[dict[str, Any]]:
        """One record per image: patient id and per-channel Dice and HD95 (for reports)."""
        if not self._counts:
            return []
        dice = scores_from_counts(np.concatenate(self._counts))["dice"]
        hd = np.concatenate(self._hd95)
        return [
            {
                "patient_id": pid,
                **{f"dice_{c}": float(dice[i, k]) for k, c in enumerate(self.channel_names)},
                **{
                    f"hd95_{c}": float(hd[i, k])
                    for k, c in enumerate(self.channel_names)
                    if self.with_hd95
                },
            }
            for i, pid in enumerate(self._patients)
        ]

    def compute(self) -> dict[str, Any]:
        """Means per channel and overall; ``None`` where no image had a defined value."""
        if not self._counts:
            raise ValueError("SegmentationEvaluator.compute() called before any update()")
        counts = np.concatenate(self._counts)  # N x K x 4
        scores = scores_from_counts(counts)
        scores["hd95"] = np.concatenate(self._hd95)
        patients = sorted(set(self._patients))
        index = {pid: j for j, pid in enumerate(patients)}
        rows = np.array([index[pid] for pid in self._patients])
        volume = np.zeros((len(patients), *counts.shape[1:]), dtype=np.int64)
        np.add.at(volume, rows, counts)  # slices of one patient summed into one volume
        vol_scores = scores_from_counts(volume)

        truth_any, pred_any = (
            (counts[..., 0] + counts[..., 2]) > 0,
            (counts[..., 0] + counts[..., 1]) > 0,
        )
        per_channel: dict[str, dict[str, Any]] = {}
        for k, name in enumerate(self.channel_names):
            ch: dict[str, Any] = {m: _mean(scores[m][:, k]) for m in self.metrics}
            ch["dice_per_patient_mean"] = _mean(vol_scores["dice"][:, k])
            ch["iou_per_patient_mean"] = _mean(vol_scores["iou"][:, k])
            ch["undefined"] = {m: int(np.isnan(scores[m][:, k]).sum()) for m in self.metrics}
            ch["empty"] = {
                "both": int((~truth_any[:, k] & ~pred_any[:, k]).sum()),
                "truth_only": int((~truth_any[:, k] & pred_any[:, k]).sum()),
                "prediction_only": int((truth_any[:, k] & ~pred_any[:, k]).sum()),
            }
            per_channel[name] = ch

        keys = [*self.metrics, "dice_per_patient_mean", "iou_per_patient_mean"]
        out: dict[str, Any] = {}
        for m in keys:
            vals = [per_channel[c][m] for c in self.channel_names if per_channel[c][m] is not None]
            out[m] = float(np.mean(vals)) if vals else None
        out["undefined"] = {
            m: sum(per_channel[c]["undefined"][m] for c in self.channel_names) for m in self.metrics
        }
        if self._named:  # the volume score of every patient, for reports and outliers
            out["per_patient"] = {
                pid: {
                    "n_slices": int((rows == j).sum()),
                    **{
                        f"dice_{c}": _finite_or_none(vol_scores["dice"][j, k])
                        for k, c in enumerate(self.channel_names)
                    },
                }
                for j, pid in enumerate(patients)
            }
        out.update(
            per_channel=per_channel,
            n=int(counts.shape[0]),
            n_patients=len(patients),
            channels=list(self.channel_names),
            aggregation=self._aggregation(),
        )
        return out

    def _aggregation(self) -> dict[str, str]:
        unit = "pixels" if self.spacing is None else "mm (pixel spacing)"
        empty = "excluded (NaN)" if self.hd95_empty == "exclude" else "image diagonal"
        hd = f"in {unit}; exactly one mask empty -> {empty}"
        return {
            "per_image": "score per image and channel, mean over all images (undefined left out)",
            "per_patient": "slice counts summed per patient (a volume), scored, mean over patients",
            "channels": "top-level value = unweighted mean of the per-channel values",
            "hd95": hd if self.with_hd95 else "not computed",
        }
