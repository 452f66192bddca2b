"""Metric protocols: the reference's validation rules as of Ultralytics 8.3.0 and 8.4.190.

:mod:`yolo_mlops.yolo.eval.metrics` implements 8.3.0 (design §6). By 8.4.190 three rules changed
(design §10, and measured against the reference files: with all three, our figures equal
``val``'s to 5 decimals on two checkpoints, at 320 and 640):

1. *where boxes are matched*: in the letterboxed input, so a prediction that reaches into the
   padding is not clipped to the image before its IoU is computed (8.3.0 clips in original
   pixels first). The IoU is the same in original pixels without clipping, since input and
   original pixels differ by one scale and a shift; that is how :func:`evaluate` applies it;
2. *matching*: greedy in descending-confidence order, each prediction taking the unmatched
   ground-truth box of its class with the highest IoU (COCO's rule) — :func:`greedy_match`;
3. *AP integration*: precision drops to 0 right after the last recall reached instead of ramping
   linearly to recall 1 — :func:`compute_ap_dropped`.

Each moves mAP by 1e-3 to 5e-3 on a trained detector; P and R (read at the max-F1 confidence at
IoU 0.5) are unaffected by 1 and 3 and barely by 2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from yolo_mlops.yolo.eval.metrics import IOU_THRESHOLDS, compute_ap, match_predictions

ProtocolName = Literal["8.3.0", "8.4.190"]
DEFAULT_PROTOCOL: ProtocolName = "8.4.190"  # the version that made the reference files


def greedy_match(
    pred_classes: np.ndarray,
    true_classes: np.ndarray,
    iou: np.ndarray,
    thresholds: np.ndarray = IOU_THRESHOLDS,
) -> np.ndarray:
    """True-positive flags of one image's predictions, confidence-ordered greedy (8.4.190).

    Args:
        pred_classes: ``[P]`` class ids in NMS order (descending score).
        true_classes: ``[G]`` ground-truth class ids.
        iou: ``[G, P]`` IoU of every (GT, prediction) pair.
        thresholds: ``[T]`` IoU thresholds.

    Returns:
        ``[P, T]`` bool. At each threshold, predictions in order take the still-unmatched GT of
        their class with the highest IoU if that IoU is ≥ the threshold (the lowest GT index on
        ties).
    """
    pred_classes = np.asarray(pred_classes).reshape(-1)
    true_classes = np.asarray(true_classes).reshape(-1)
    correct = np.zeros((pred_classes.shape[0], len(thresholds)), dtype=bool)
    if pred_classes.size == 0 or true_classes.size == 0:
        return correct
    iou = np.asarray(iou, dtype=np.float64) * (true_classes[:, None] == pred_classes[None, :])
    # only predictions that reach the lowest threshold with some GT can ever match
    candidates = np.nonzero(iou.max(0) >= min(thresholds))[0]
    for t, threshold in enumerate(thresholds):
        free = np.ones(true_classes.shape[0], dtype=bool)
        for p in candidates:
            overlaps = np.where(free, iou[:, p], -1.0)
            best = int(overlaps.argmax())
            if overlaps[best] >= threshold:
                free[best] = False
                correct[p, t] = True
    return correct


def compute_ap_dropped(
    recall: np.ndarray, precision: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """AP as 8.4.190 integrates it: like :func:`~yolo_mlops.yolo.eval.metrics.compute_ap`, with an
    extra (last recall, precision 0) point so the curve drops to 0 where recall stops.

    Returns:
        ``(ap, envelope_precision [n+3], recall_with_sentinels [n+3])``.
    """
    last = recall[-1] if len(recall) else 0.0
    mrec = np.concatenate(([0.0], recall, [last, 1.0]))
    mpre = np.concatenate(([1.0], precision, [0.0, 0.0]))
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))  # running max from the right
    x = np.linspace(0, 1, 101)
    return float(np.trapezoid(np.interp(x, mrec, mpre), x)), mpre, mrec


@dataclass(frozen=True)
class MetricRules:
    """The rules of one protocol.

    Attributes:
        name: the reference version.
        match: per-image TP flags (``match_predictions`` signature).
        compute_ap: AP of one PR curve (``compute_ap`` signature).
        clip_before_matching: clip boxes to the original image before matching.
    """

    name: str
    match: Callable[..., np.ndarray]
    compute_ap: Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray, np.ndarray]]
    clip_before_matching: bool


def metric_rules(protocol: str) -> MetricRules:
    """The :class:`MetricRules` of ``protocol`` ("8.3.0" or "8.4.190")."""
    if protocol == "8.3.0":
        return MetricRules("8.3.0", match_predictions, compute_ap, clip_before_matching=True)
    if protocol == "8.4.190":
        return MetricRules("8.4.190", greedy_match, compute_ap_dropped, clip_before_matching=False)
    raise ValueError(f"unknown metric protocol {protocol!r}; use '8.3.0' or '8.4.190'")
