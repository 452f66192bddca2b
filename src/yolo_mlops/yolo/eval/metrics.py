"""Detection metrics computed the way Ultralytics 8.3.0 validates (design §6).

Pipeline of the computation:

1. per image, :func:`match_predictions` marks each prediction true positive or not at the ten IoU
   thresholds 0.50:0.05:0.95 (boxes in original image pixels);
2. all images' ``(tp, score, class)`` rows and GT classes go to :func:`ap_per_class`, which returns
   AP per class and threshold (101-point interpolated, :func:`compute_ap`) and the P/R/F1 curves
   sampled at 1000 confidences; P and R are read at the argmax of the smoothed class-mean F1;
3. :func:`detection_metrics` folds that into the reported numbers and :func:`per_class_table` into
   the per-class table; :func:`fitness` is 0.1·mAP50 + 0.9·mAP50-95 (8.3.0).

:class:`ConfusionMatrix` is the separate class-agnostic-matching confusion matrix (``nc + 1`` rows
and columns, the last one "background").

Everything here is numpy; no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from yolo_mlops.yolo.boxes import box_iou

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # 0.50, 0.55, ..., 0.95
CURVE_POINTS = 1000  # confidences / recalls at which curves are sampled
_EPS = 1e-16
#: ``compute(recall [n], precision [n]) -> (ap, envelope precision, recall)`` of one PR curve.
APRule = Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray, np.ndarray]]


def match_predictions(
    pred_classes: np.ndarray,
    true_classes: np.ndarray,
    iou: np.ndarray,
    thresholds: np.ndarray = IOU_THRESHOLDS,
) -> np.ndarray:
    """True-positive flags of one image's predictions at each IoU threshold (8.3.0 matching).

    Args:
        pred_classes: ``[P]`` class ids of the predictions, in NMS order (descending score).
        true_classes: ``[G]`` class ids of the ground-truth boxes.
        iou: ``[G, P]`` IoU of every (GT, prediction) pair.
        thresholds: ``[T]`` IoU thresholds.

    Returns:
        ``[P, T]`` bool: prediction ``p`` is a true positive at threshold ``t``.

    At each threshold the (GT, pred) pairs with IoU ≥ thr are sorted by IoU descending; each
    prediction keeps its best pair (survivors come back ordered by prediction index); each GT then
    keeps the first remaining pair, i.e. its lowest-index (most confident) candidate prediction.
    """
    pred_classes = np.asarray(pred_classes)
    true_classes = np.asarray(true_classes)
    correct = np.zeros((pred_classes.shape[0], len(thresholds)), dtype=bool)
    if pred_classes.size == 0 or true_classes.size == 0:
        return correct
    iou = np.asarray(iou, dtype=np.float64) * (true_classes[:, None] == pred_classes[None, :])
    for t, threshold in enumerate(thresholds):
        gt_index, pred_index = _by_iou(iou, *np.nonzero(iou >= threshold))
        if gt_index.size == 0:
            continue
        # np.unique keeps the first (highest-IoU) pair per prediction, sorted by pred index
        _, keep = np.unique(pred_index, return_index=True)
        gt_index, pred_index = gt_index[keep], pred_index[keep]
        # first remaining pair per GT = its lowest prediction index
        _, keep = np.unique(gt_index, return_index=True)
        correct[pred_index[keep], t] = True
    return correct


def _by_iou(
    iou: np.ndarray, gt_index: np.ndarray, pred_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The (GT, prediction) pairs sorted by their IoU, descending (ties keep their order)."""
    order = np.argsort(-iou[gt_index, pred_index], kind="stable")
    return gt_index[order], pred_index[order]


def compute_ap(recall: np.ndarray, precision: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Average precision of one PR curve (8.3.0: sentinels, monotone envelope, 101-point trapezoid).

    Args:
        recall: ``[n]`` cumulative recall in descending-confidence order.
        precision: ``[n]`` cumulative precision in the same order.

    Returns:
        ``(ap, envelope_precision [n+2], recall_with_sentinels [n+2])``.
    """
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([1.0], precision, [0.0]))
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))  # running max from the right
    x = np.linspace(0, 1, 101)
    ap = float(np.trapezoid(np.interp(x, mrec, mpre), x))
    return ap, mpre, mrec


def smooth(values: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Box filter of odd width ``round(len·fraction·2)//2 + 1``, edges padded with end values."""
    width = round(len(values) * fraction * 2) // 2 + 1
    pad = np.ones(width // 2)
    padded = np.concatenate((pad * values[0], values, pad * values[-1]))
    return np.convolve(padded, np.ones(width) / width, mode="valid")


@dataclass
class APResult:
    """Output of :func:`ap_per_class`; class rows follow ``classes`` (the GT classes, sorted).

    Attributes:
        classes: ``[C]`` class ids present in the ground truth.
        instances: ``[C]`` GT boxes per class.
        ap: ``[C, 10]`` AP per class and IoU threshold.
        precision, recall, f1: ``[C]`` values at the confidence where the smoothed mean F1 peaks.
        best_confidence: that confidence.
        confidence_axis: ``[1000]`` confidences (also the recall axis of ``pr_precision``).
        precision_curve, recall_curve, f1_curve: ``[C, 1000]`` versus confidence (IoU 0.5).
        pr_precision: ``[C, 1000]`` envelope precision versus recall ``confidence_axis`` (IoU 0.5).
    """

    classes: np.ndarray
    instances: np.ndarray
    ap: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    best_confidence: float
    confidence_axis: np.ndarray
    precision_curve: np.ndarray
    recall_curve: np.ndarray
    f1_curve: np.ndarray
    pr_precision: np.ndarray


def ap_per_class(
    tp: np.ndarray,
    conf: np.ndarray,
    pred_cls: np.ndarray,
    target_cls: np.ndarray,
    compute: APRule = compute_ap,
) -> APResult:
    """AP per class over the whole dataset (8.3.0 ``ap_per_class``).

    Args:
        tp: ``[P, T]`` true-positive flags of every prediction of the dataset.
        conf: ``[P]`` scores.
        pred_cls: ``[P]`` predicted class ids.
        target_cls: ``[G]`` class ids of every GT box of the dataset.
        compute: AP of one PR curve (:func:`compute_ap`, or another protocol's rule).

    Classes are those present in ``target_cls``; a class with GT but no prediction gets AP 0, and
    predictions of classes absent from the GT are ignored.
    """
    tp = np.asarray(tp, dtype=np.float64)
    tp = tp[:, None] if tp.ndim == 1 else tp  # [P] -> [P, 1]
    conf = np.asarray(conf, dtype=np.float64)
    pred_cls = np.asarray(pred_cls)
    order = np.argsort(-conf, kind="stable")
    tp, conf, pred_cls = tp[order], conf[order], pred_cls[order]
    classes, instances = np.unique(np.asarray(target_cls).astype(np.int64), return_counts=True)
    axis = np.linspace(0, 1, CURVE_POINTS)
    ap = np.zeros((len(classes), tp.shape[1]))
    p_curve, r_curve, pr_precision = (np.zeros((len(classes), CURVE_POINTS)) for _ in range(3))
    for row, (cls, n_gt) in enumerate(zip(classes, instances, strict=True)):
        mine = pred_cls == cls
        if mine.any():
            curves = _class_curves(tp[mine], conf[mine], n_gt, axis, compute)
            ap[row], p_curve[row], r_curve[row], pr_precision[row] = curves
    f1_curve = 2 * p_curve * r_curve / (p_curve + r_curve + _EPS)
    best = int(smooth(f1_curve.mean(0)).argmax()) if len(classes) else 0
    return APResult(
        classes=classes,
        instances=instances,
        ap=ap,
        precision=p_curve[:, best],
        recall=r_curve[:, best],
        f1=f1_curve[:, best],
        best_confidence=float(axis[best]),
        confidence_axis=axis,
        precision_curve=p_curve,
        recall_curve=r_curve,
        f1_curve=f1_curve,
        pr_precision=pr_precision,
    )


def _class_curves(
    tp: np.ndarray, conf: np.ndarray, n_gt: int, axis: np.ndarray, compute: APRule
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One class's AP ``[T]``, P and R versus confidence ``axis`` and envelope precision versus
    recall ``axis`` (curves at IoU 0.5), from its predictions ``tp [p, T]``, ``conf [p]``
    (descending)."""
    tp_cum = tp.cumsum(0)
    fp_cum = (1 - tp).cumsum(0)
    recall = tp_cum / (n_gt + _EPS)
    precision = tp_cum / (tp_cum + fp_cum)
    # np.interp needs increasing x: confidences decrease, so negate both axes
    r_curve = np.interp(-axis, -conf, recall[:, 0], left=0)
    p_curve = np.interp(-axis, -conf, precision[:, 0], left=1)
    ap = np.zeros(tp.shape[1])
    for t in range(tp.shape[1]):
        ap[t], mpre, mrec = compute(recall[:, t], precision[:, t])
        if t == 0:
            pr_precision = np.interp(axis, mrec, mpre)
    return ap, p_curve, r_curve, pr_precision


def fitness(metrics: dict[str, float]) -> float:
    """8.3.0 fitness: ``0.1·mAP50 + 0.9·mAP50-95``."""
    return 0.1 * metrics["mAP50"] + 0.9 * metrics["mAP50-95"]


def detection_metrics(result: APResult) -> dict[str, float]:
    """The reported numbers (fractions): precision, recall, mAP50, mAP50-95, mAP75, fitness.

    All are means over the GT classes; all 0 when the dataset has no GT box.
    """
    if len(result.classes) == 0:
        metrics = {"precision": 0.0, "recall": 0.0, "mAP50": 0.0, "mAP50-95": 0.0, "mAP75": 0.0}
    else:
        metrics = {
            "precision": float(result.precision.mean()),
            "recall": float(result.recall.mean()),
            "mAP50": float(result.ap[:, 0].mean()),
            "mAP50-95": float(result.ap.mean()),
            "mAP75": float(result.ap[:, 5].mean()) if result.ap.shape[1] > 5 else 0.0,
        }
    metrics["fitness"] = fitness(metrics)
    return metrics


PER_CLASS_COLUMNS = ["class", "images", "instances", "precision", "recall", "mAP50", "mAP50-95"]


def per_class_table(
    result: APResult,
    names: list[str],
    images_per_class: np.ndarray,
    images_seen: int,
) -> pd.DataFrame:
    """The reference's validation table: the "all" row first, then one row per GT class.

    Args:
        result: from :func:`ap_per_class`.
        names: class names indexed by class id.
        images_per_class: ``[nc]`` number of images containing at least one GT of each class.
        images_seen: number of images evaluated (the "all" row's Images).
    """
    metrics = detection_metrics(result)
    keys = ("precision", "recall", "mAP50", "mAP50-95")
    rows = [("all", int(images_seen), int(result.instances.sum()), *(metrics[k] for k in keys))]
    for row, cls in enumerate(result.classes):
        name = names[cls] if cls < len(names) else str(cls)
        images = int(images_per_class[cls]) if cls < len(images_per_class) else 0
        ap = result.ap[row]
        values = (result.precision[row], result.recall[row], ap[0], ap.mean())
        rows.append((name, images, int(result.instances[row]), *map(float, values)))
    return pd.DataFrame(rows, columns=PER_CLASS_COLUMNS)


def format_table(table: pd.DataFrame) -> str:
    """Fixed-width text of a :func:`per_class_table` for the log, like the reference's printout."""
    lines = [
        f"{'Class':>22}{'Images':>11}{'Instances':>11}{'P':>11}{'R':>11}{'mAP50':>11}"
        f"{'mAP50-95':>11}"
    ]
    for row in table.itertuples(index=False):
        lines.append(
            f"{row[0]:>22}{row[1]:>11}{row[2]:>11}{row[3]:>11.3g}{row[4]:>11.3g}"
            f"{row[5]:>11.3g}{row[6]:>11.3g}"
        )
    return "\n".join(lines)


class ConfusionMatrix:
    """Detection confusion matrix, ``[nc+1, nc+1]`` indexed ``[predicted, true]``; index ``nc``
    is background (a missed GT counts in row ``nc``, an unmatched prediction in column ``nc``).

    Matching is class-agnostic: predictions with score > ``conf`` are paired one-to-one with GT
    boxes of IoU > ``iou_threshold``, highest IoU first. Defaults: 8.3.0's (conf 0.25, IoU 0.45).
    """

    def __init__(self, num_classes: int, conf: float = 0.25, iou_threshold: float = 0.45) -> None:
        self.num_classes = num_classes
        self.conf = conf
        self.iou_threshold = iou_threshold
        self.matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)

    def update(
        self,
        pred_boxes: np.ndarray,
        pred_scores: np.ndarray,
        pred_classes: np.ndarray,
        true_boxes: np.ndarray,
        true_classes: np.ndarray,
    ) -> None:
        """Add one image: predictions ``[P,4]``/``[P]``/``[P]`` and GT ``[G,4]``/``[G]``, xyxy."""
        background = self.num_classes
        keep = np.asarray(pred_scores) > self.conf
        pred_boxes = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)[keep]
        pred_classes = np.asarray(pred_classes, dtype=np.int64)[keep]
        true_classes = np.asarray(true_classes, dtype=np.int64)
        matched_pred = np.zeros(len(pred_classes), dtype=bool)
        if len(true_classes) and len(pred_classes):
            iou = box_iou(true_boxes, pred_boxes)
            gt_index, pred_index = _by_iou(iou, *np.nonzero(iou > self.iou_threshold))
            _, keep = np.unique(pred_index, return_index=True)  # a prediction's best GT
            gt_index, pred_index = _by_iou(iou, gt_index[keep], pred_index[keep])
            _, keep = np.unique(gt_index, return_index=True)  # then a GT's best prediction
            gt_index, pred_index = gt_index[keep], pred_index[keep]
        else:
            gt_index = pred_index = np.zeros(0, dtype=np.int64)
        pred_for_gt = dict(zip(gt_index.tolist(), pred_index.tolist(), strict=True))
        for g, true_cls in enumerate(true_classes):
            if g in pred_for_gt:
                self.matrix[pred_classes[pred_for_gt[g]], true_cls] += 1
                matched_pred[pred_for_gt[g]] = True
            else:
                self.matrix[background, true_cls] += 1
        for pred_cls in pred_classes[~matched_pred]:
            self.matrix[pred_cls, background] += 1

    def normalized(self) -> np.ndarray:
        """Columns (true classes, background last) normalised to sum 1; float ``[nc+1, nc+1]``."""
        return self.matrix / (self.matrix.sum(0, keepdims=True) + 1e-9)


class DetectionStats:
    """Accumulates per-image matches over a dataset, then computes the metrics once.

    Feed every evaluated image to :meth:`update` (boxes in original image pixels); images with
    neither predictions nor GT add nothing but the image count, images with GT but no prediction
    add false negatives, predictions on an image without GT are false positives.
    """

    def __init__(
        self,
        num_classes: int,
        confusion_conf: float = 0.25,
        confusion_iou: float = 0.45,
        match: Callable[..., np.ndarray] = match_predictions,
        ap_rule: APRule = compute_ap,
    ) -> None:
        self.num_classes = num_classes
        self.match, self.ap_rule = match, ap_rule  # the protocol's rules (yolo/protocol.py)
        self.images_seen = 0
        self.images_per_class = np.zeros(num_classes, dtype=np.int64)
        self.confusion = ConfusionMatrix(num_classes, confusion_conf, confusion_iou)
        self._tp: list[np.ndarray] = []
        self._conf: list[np.ndarray] = []
        self._pred_cls: list[np.ndarray] = []
        self._target_cls: list[np.ndarray] = []

    def update(
        self,
        pred_boxes: np.ndarray,
        pred_scores: np.ndarray,
        pred_classes: np.ndarray,
        true_boxes: np.ndarray,
        true_classes: np.ndarray,
    ) -> None:
        """Add one image: predictions ``[P,4]`` xyxy / ``[P]`` / ``[P]`` in NMS (descending-score)
        order, GT ``[G,4]`` xyxy / ``[G]``."""
        pred_boxes = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
        pred_scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
        pred_classes = np.asarray(pred_classes).reshape(-1).astype(np.int64)
        true_boxes = np.asarray(true_boxes, dtype=np.float64).reshape(-1, 4)
        true_classes = np.asarray(true_classes).reshape(-1).astype(np.int64)
        self.images_seen += 1
        present = np.unique(true_classes)
        self.images_per_class[present[present < self.num_classes]] += 1
        self.confusion.update(pred_boxes, pred_scores, pred_classes, true_boxes, true_classes)
        if len(pred_classes) == 0 and len(true_classes) == 0:
            return
        iou = box_iou(true_boxes, pred_boxes)
        self._tp.append(self.match(pred_classes, true_classes, iou))
        self._conf.append(pred_scores)
        self._pred_cls.append(pred_classes)
        self._target_cls.append(true_classes)

    def compute(self, names: list[str]) -> tuple[dict[str, float], pd.DataFrame, APResult]:
        """``(metrics, per-class table, APResult)`` over everything added so far."""

        def cat(parts: list[np.ndarray], empty: np.ndarray) -> np.ndarray:
            return np.concatenate(parts, axis=0) if parts else empty

        result = ap_per_class(
            cat(self._tp, np.zeros((0, len(IOU_THRESHOLDS)), dtype=bool)),
            cat(self._conf, np.zeros(0)),
            cat(self._pred_cls, np.zeros(0, dtype=np.int64)),
            cat(self._target_cls, np.zeros(0, dtype=np.int64)),
            self.ap_rule,
        )
        table = per_class_table(result, names, self.images_per_class, self.images_seen)
        return detection_metrics(result), table, result
