"""COCO-protocol cross-check of the internal metrics with pycocotools.

The same ground truth and predictions (original image pixels) are handed to ``COCOeval`` as
in-memory COCO dicts. COCO's matching is confidence-greedy per image and its AP uses 101 recall
points without the internal metric's (1, 0) ramp, so the numbers differ slightly from
:mod:`yolo_mlops.yolo.eval.metrics` (the published YOLO11 numbers are the pycocotools ones).
"""

from __future__ import annotations

import contextlib
import io
import logging

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)


def _coco_dicts(
    images: pd.DataFrame, ground_truth: pd.DataFrame, predictions: pd.DataFrame
) -> tuple[dict, list[dict]]:
    """COCO GT dataset dict and detection list; category id = class id + 1 (COCO ids start at 1)."""
    classes = sorted(
        {int(c) for c in ground_truth["class_id"]} | {int(c) for c in predictions["class_id"]}
    )
    gt_boxes = ground_truth[["x1", "y1", "x2", "y2"]].to_numpy(np.float64).reshape(-1, 4)
    gt_wh = gt_boxes[:, 2:] - gt_boxes[:, :2]
    annotations = [
        {
            "id": number + 1,
            "image_id": int(image_id),
            "category_id": int(class_id) + 1,
            "bbox": [float(x), float(y), float(w), float(h)],
            "area": float(w * h),
            "iscrowd": 0,
        }
        for number, (image_id, class_id, (x, y), (w, h)) in enumerate(
            zip(
                ground_truth["image_id"],
                ground_truth["class_id"],
                gt_boxes[:, :2],
                gt_wh,
                strict=True,
            )
        )
    ]
    dataset = {
        "images": [
            {"id": int(row.image_id), "height": int(row.height), "width": int(row.width)}
            for row in images.drop_duplicates("image_id").itertuples(index=False)
        ],
        "annotations": annotations,
        "categories": [{"id": c + 1, "name": str(c)} for c in classes],
    }
    boxes = predictions[["x1", "y1", "x2", "y2"]].to_numpy(np.float64).reshape(-1, 4)
    detections = [
        {
            "image_id": int(image_id),
            "category_id": int(class_id) + 1,
            "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
            "score": float(score),
        }
        for image_id, class_id, score, (x1, y1, x2, y2) in zip(
            predictions["image_id"],
            predictions["class_id"],
            predictions["score"],
            boxes,
            strict=True,
        )
    ]
    return dataset, detections


def _mean_valid(precision: np.ndarray) -> float:
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else 0.0


def coco_evaluate(
    images: pd.DataFrame,
    ground_truth: pd.DataFrame,
    predictions: pd.DataFrame,
    max_det: int = 300,
) -> dict[str, float]:
    """COCO bbox mAP of the predictions.

    Args:
        images: image_id, height, width (original pixels) of every evaluated image, with or without
            GT (predictions on images without GT are false positives).
        ground_truth: image_id, class_id, x1, y1, x2, y2 (original pixels).
        predictions: image_id, class_id, score, x1, y1, x2, y2 (original pixels).
        max_det: detections per image COCOeval considers (its default 100 would cut the
            reference's 300).

    Returns:
        {"coco/mAP50-95", "coco/mAP50"} as fractions; both 0 when there is no ground truth.
    """
    if ground_truth.empty:
        return {"coco/mAP50-95": 0.0, "coco/mAP50": 0.0}
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset, detections = _coco_dicts(images, ground_truth, predictions)
    # pycocotools prints progress and summaries to stdout; keep it out of our logs
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
        if not detections:
            return {"coco/mAP50-95": 0.0, "coco/mAP50": 0.0}
        coco_dt = coco_gt.loadRes(detections)
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.params.maxDets = [1, 10, max_det]
        evaluator.evaluate()
        evaluator.accumulate()
    # summarize() hard-codes maxDets=100 for its first number, so read the precision table
    # [iou thresholds, recall points, classes, area ranges, max-dets] directly (area "all",
    # the largest max-det); -1 marks classes without GT
    precision = evaluator.eval["precision"][:, :, :, 0, -1]
    map50_95, map50 = _mean_valid(precision), _mean_valid(precision[0])
    logger.info("COCO cross-check: mAP50-95 %.4f, mAP50 %.4f", map50_95, map50)
    return {"coco/mAP50-95": map50_95, "coco/mAP50": map50}
