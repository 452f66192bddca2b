"""What the ``evaluate_model`` node writes: the metrics, tables and plots of one evaluation.

The figures come from :mod:`yolo_mlops.yolo.eval.plots`; the COCO cross-check from
:mod:`yolo_mlops.yolo.eval.coco_eval`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from yolo_mlops.pipelines.evaluate.evaluation import EvaluationParams
from yolo_mlops.yolo.data.image_cache import ImageCache
from yolo_mlops.yolo.eval.coco_eval import coco_evaluate
from yolo_mlops.yolo.eval.evaluate import EvalResult
from yolo_mlops.yolo.eval.plots import (
    plot_confusion_matrix,
    plot_metric_curve,
    plot_pr_curve,
    plot_prediction_grid,
)

PLOT_CONF = 0.25  # predictions drawn on the image grid (the reference's plotting threshold)
PR_POINTS = 101  # recall points per class in pr_curve.csv


def metrics_record(result: EvalResult, params: EvaluationParams) -> dict[str, float]:
    """``metrics.json``: the fractions, ``coco/*`` (when ``coco_eval``) and ``speed_ms/*``."""
    metrics = dict(result.metrics)
    if params.coco_eval:
        metrics.update(
            coco_evaluate(result.images, result.ground_truth, result.predictions, params.max_det)
        )
    metrics.update({f"speed_ms/{key}": value for key, value in result.speed.items()})
    return metrics


def pr_curve_table(result: EvalResult) -> pd.DataFrame:
    """Long table for ``dvc plots``: class (name or "all"), recall, precision at 101 recalls."""
    curves = result.curves
    recall = np.linspace(0, 1, PR_POINTS)
    frames = []
    rows = [(result.names[c], curves.pr_precision[i]) for i, c in enumerate(curves.classes)]
    if len(curves.classes):
        rows.insert(0, ("all", curves.pr_precision.mean(0)))
    for name, precision in rows:
        sampled = np.interp(recall, curves.confidence_axis, precision)
        frames.append(pd.DataFrame({"class": name, "recall": recall, "precision": sampled}))
    if not frames:
        return pd.DataFrame(columns=["class", "recall", "precision"])
    return pd.concat(frames, ignore_index=True)


def prediction_grid(result: EvalResult, cache: ImageCache, count: int) -> Figure:
    """The first ``count`` evaluated images (cached resolution) with their ground truth and the
    predictions scoring ≥ 0.25."""
    image_ids = result.images["image_id"].tolist()[:count]
    predictions = result.predictions[result.predictions["score"] >= PLOT_CONF]
    truth = result.ground_truth
    corners = ["x1", "y1", "x2", "y2"]
    images, detections, ground_truth, titles = [], [], [], []
    for image_id in image_ids:
        mine = predictions[predictions["image_id"] == image_id]
        true = truth[truth["image_id"] == image_id]
        gain = cache.resize_gain(image_id)  # cached = original · gain
        images.append(cache.image(image_id))
        boxes = mine[corners].to_numpy(np.float64) * gain
        detections.append((boxes, mine["score"].to_numpy(), mine["class_id"].to_numpy()))
        ground_truth.append(
            (true[corners].to_numpy(np.float64) * gain, true["class_id"].to_numpy())
        )
        titles.append(str(cache.path(image_id)).rsplit("/", 1)[-1])
    return plot_prediction_grid(
        images, detections, result.names, titles,
        ground_truth=ground_truth, score_label=f"prediction (score ≥ {PLOT_CONF})",
    )  # fmt: skip


def evaluation_outputs(
    result: EvalResult, cache: ImageCache, params: EvaluationParams
) -> dict[str, Any]:
    """The node's outputs by catalog name (see ``pipeline.OUTPUTS``)."""
    curves = result.curves
    class_names = [result.names[c] for c in curves.classes]
    return {
        "metrics": metrics_record(result, params),
        "per_class_metrics": result.per_class,
        "pr_curve_data": pr_curve_table(result),
        "val_predictions": result.predictions,
        "pr_curve_plot": plot_pr_curve(
            curves.confidence_axis, curves.pr_precision, curves.ap[:, 0], class_names
        ),
        "f1_curve_plot": plot_metric_curve(curves.confidence_axis, curves.f1_curve, class_names),
        "confusion_matrix_plot": plot_confusion_matrix(
            result.confusion.matrix, result.names, all_classes=params.confusion_all_classes
        ),
        "val_predictions_plot": prediction_grid(result, cache, params.plot_images),
    }
