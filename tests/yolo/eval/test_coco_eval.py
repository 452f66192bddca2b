"""COCO-protocol cross-check (pycocotools) against known cases and the internal metric."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from yolo_mlops.yolo.eval.coco_eval import coco_evaluate
from yolo_mlops.yolo.eval.metrics import DetectionStats


def _frames(
    gt: list[tuple[int, int, list[float]]], preds: list[tuple[int, int, float, list[float]]]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    image_ids = sorted({g[0] for g in gt} | {p[0] for p in preds})
    images = pd.DataFrame({"image_id": image_ids, "height": 480, "width": 640})
    ground_truth = pd.DataFrame(
        [(i, c, *box) for i, c, box in gt], columns=["image_id", "class_id", "x1", "y1", "x2", "y2"]
    )
    predictions = pd.DataFrame(
        [(i, c, s, *box) for i, c, s, box in preds],
        columns=["image_id", "class_id", "score", "x1", "y1", "x2", "y2"],
    )
    return images, ground_truth, predictions


def test_perfect_predictions_give_coco_map_one() -> None:
    gt = [(0, 0, [10, 10, 100, 120]), (0, 1, [200, 50, 300, 200]), (1, 0, [5, 5, 60, 90])]
    preds = [(i, c, 0.9 - 0.1 * k, box) for k, (i, c, box) in enumerate(gt)]
    metrics = coco_evaluate(*_frames(gt, preds))
    assert metrics["coco/mAP50-95"] == pytest.approx(1.0)
    assert metrics["coco/mAP50"] == pytest.approx(1.0)


def test_no_predictions_give_zero() -> None:
    metrics = coco_evaluate(*_frames([(0, 0, [10, 10, 100, 120])], []))
    assert metrics == {"coco/mAP50-95": 0.0, "coco/mAP50": 0.0}


def test_false_positive_on_image_without_gt_lowers_coco_map() -> None:
    gt = [(0, 0, [10, 10, 100, 120])]
    preds = [(0, 0, 0.5, [10, 10, 100, 120]), (1, 0, 0.9, [10, 10, 100, 120])]
    metrics = coco_evaluate(*_frames(gt, preds))
    # precision 0.5 at every recall point COCO samples (101 points, no ramp)
    assert metrics["coco/mAP50"] == pytest.approx(0.5)


def test_agrees_with_internal_metric_on_random_case() -> None:
    rng = np.random.default_rng(0)
    gt, preds = [], []
    stats = DetectionStats(num_classes=3)
    for image_id in range(12):
        count = int(rng.integers(1, 6))
        xy = rng.uniform(0, 500, (count, 2))
        wh = rng.uniform(30, 140, (count, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        classes = rng.integers(0, 3, count)
        noisy = boxes + rng.normal(0, 6, boxes.shape)
        extra = np.concatenate([rng.uniform(0, 500, (2, 2)), rng.uniform(0, 500, (2, 2)) + 40], 1)
        extra[:, 2:] = np.maximum(extra[:, 2:], extra[:, :2] + 20)
        pred_boxes = np.concatenate([noisy, extra])
        pred_classes = np.concatenate([classes, rng.integers(0, 3, 2)])
        scores = np.concatenate([rng.uniform(0.3, 1.0, count), rng.uniform(0.0, 0.6, 2)])
        order = np.argsort(-scores)
        pred_boxes, pred_classes, scores = pred_boxes[order], pred_classes[order], scores[order]
        stats.update(pred_boxes, scores, pred_classes, boxes, classes)
        gt += [(image_id, int(c), list(b)) for c, b in zip(classes, boxes, strict=True)]
        preds += [
            (image_id, int(c), float(s), list(b))
            for c, s, b in zip(pred_classes, scores, pred_boxes, strict=True)
        ]
    internal, _, _ = stats.compute(["a", "b", "c"])
    coco = coco_evaluate(*_frames(gt, preds))
    assert 0.2 < coco["coco/mAP50-95"] < 0.95
    # the internal AP ramps precision linearly to 0 at recall 1 (spec 6.3): slightly optimistic
    for key in ("mAP50-95", "mAP50"):
        assert internal[key] - 0.06 <= coco[f"coco/{key}"] <= internal[key] + 0.01
