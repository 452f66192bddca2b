"""Evaluation node: a checkpoint on the validation split of the image cache → metrics and plots.

Kedro adapter over :mod:`yolo_mlops.yolo.eval.evaluate` (metrics),
:mod:`yolo_mlops.yolo.eval.coco_eval` (COCO cross-check) and :mod:`yolo_mlops.yolo.eval.plots`.
Which model is evaluated:

* ``evaluation.checkpoint`` set → that file (ours or an Ultralytics ``.pt``), an official name
  (``yolo11n.pt``) or an ``http(s)://`` URL, fetched into the weights cache by
  :func:`yolo_mlops.weights_cache.fetch_weights` and read with the restricted unpickler;
* otherwise the ``model_checkpoint`` input (the trainer's best checkpoint) when the node has one,
  else the file ``data/06_models/best.pt``.

At which size: ``evaluation.imgsz``, by default the training size recorded in the checkpoint (else
the image cache's). The cached pixels are used when the cache was built at that size; otherwise the
original images are read again (:func:`yolo_mlops.yolo.data.eval_data.build_eval_images`), so one
``kedro run --pipelines evaluate`` evaluates at any size. Batches are rectangular like the
reference's ``val`` (``evaluation.rect``) and the metric rules are those of
``evaluation.protocol`` (:mod:`yolo_mlops.yolo.eval.protocol`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from yolo_mlops.params import parse_params
from yolo_mlops.weights_cache import fetch_weights
from yolo_mlops.yolo.data.eval_data import build_eval_images, build_letterbox_loader
from yolo_mlops.yolo.data.image_cache import ImageCache
from yolo_mlops.yolo.device import select_device
from yolo_mlops.yolo.eval.coco_eval import coco_evaluate
from yolo_mlops.yolo.eval.evaluate import EvalResult, evaluate
from yolo_mlops.yolo.eval.plots import (
    plot_confusion_matrix,
    plot_metric_curve,
    plot_pr_curve,
    plot_prediction_grid,
)
from yolo_mlops.yolo.io.checkpoint import model_from_checkpoint, read_checkpoint
from yolo_mlops.yolo.io.weights import OFFICIAL_BASE_URL, check_sha256

logger = logging.getLogger(__name__)

BLOCK = "evaluation"
STRIDE = 32  # canvas sides are multiples of the largest model stride
DEFAULT_CHECKPOINT = "data/06_models/best.pt"
PLOT_CONF = 0.25  # predictions drawn on the image grid (the reference's plotting threshold)
PR_POINTS = 101  # recall points per class in pr_curve.csv


@dataclass(frozen=True)
class EvaluationParams:
    """The ``evaluation`` parameter block (conf/*/parameters_evaluation.yml)."""

    checkpoint: str | None = ""  # ""/None = the trained model (model_checkpoint / best.pt)
    checkpoint_sha256: str | None = None  # expected sha256 of the checkpoint file
    weights_base_url: str = OFFICIAL_BASE_URL  # where official names (yolo11n.pt) resolve
    split: str = "val"
    imgsz: int = 0  # 0 = the training size recorded in the checkpoint, else the cache's
    rect: bool = True  # rectangular batches (the reference's val); False = imgsz x imgsz canvases
    protocol: Literal["8.3.0", "8.4.190"] = "8.4.190"  # metric rules of that Ultralytics val
    conf: float = 0.001
    iou: float = 0.7
    max_det: int = 300
    batch_size: int = 32
    workers: int = 0
    device: str = "auto"
    coco_eval: bool = True
    plot_images: int = 16
    verbose: bool = True
    confusion_all_classes: bool = False  # False: only classes with a true or predicted box

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf < 1.0:
            raise ValueError(f"conf must be in [0, 1), got {self.conf}")
        if not 0.0 < self.iou <= 1.0:
            raise ValueError(f"iou must be in (0, 1], got {self.iou}")
        if self.max_det < 1 or self.batch_size < 1:
            raise ValueError("max_det and batch_size must be >= 1")
        if self.workers < 0 or self.plot_images < 0:
            raise ValueError("workers and plot_images must be >= 0")
        if self.imgsz != 0 and (self.imgsz < STRIDE or (not self.rect and self.imgsz % STRIDE)):
            raise ValueError(
                f"imgsz must be 0 (the checkpoint's training size) or >= {STRIDE}, and a multiple "
                f"of {STRIDE} when rect is false; got {self.imgsz}"
            )
        check_sha256(self.checkpoint_sha256, "evaluation.checkpoint_sha256")
        object.__setattr__(self, "checkpoint", self.checkpoint or "")  # frozen dataclass


def _checkpoint(params: EvaluationParams, model_checkpoint: dict[str, Any] | None) -> dict:
    if params.checkpoint:
        weights = fetch_weights(
            params.checkpoint,
            parameter="evaluation.checkpoint",
            base_url=params.weights_base_url,
            sha256=params.checkpoint_sha256,
        )
        assert weights is not None
        logger.info("evaluating %s (evaluation.checkpoint=%s)", weights.path, params.checkpoint)
        return read_checkpoint(weights.path)
    if model_checkpoint is not None:
        logger.info("evaluating the trained model (model_checkpoint)")
        return model_checkpoint
    logger.info("evaluating %s (evaluation.checkpoint is empty)", DEFAULT_CHECKPOINT)
    return read_checkpoint(DEFAULT_CHECKPOINT)


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


def evaluate_model(
    image_cache: ImageCache,
    parameters: dict[str, Any],
    model_checkpoint: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint on ``evaluation.split`` of the image cache.

    Args:
        image_cache: the preprocessed images and labels (``image_cache`` catalog entry).
        parameters: the ``evaluation`` block (see :class:`EvaluationParams`).
        model_checkpoint: the trainer's checkpoint dict (design §7), or ``None``.

    Returns:
        The outputs by catalog name: ``metrics`` (dict of fractions and speed_ms/*),
        ``per_class_metrics``, ``pr_curve_data``, ``val_predictions`` (DataFrames) and the plots
        ``pr_curve_plot``, ``f1_curve_plot``, ``confusion_matrix_plot``, ``val_predictions_plot``.
    """
    params = parse_params(EvaluationParams, parameters, BLOCK)
    ckpt = _checkpoint(params, model_checkpoint)
    names = list(image_cache.names)
    model_nc = int(ckpt["config"]["nc"])
    if model_nc != len(names):
        raise ValueError(
            f"the checkpoint predicts {model_nc} classes but the dataset has {len(names)}; "
            "evaluate a checkpoint trained on this dataset (evaluation.checkpoint)"
        )
    if list(ckpt["config"]["names"]) != names:
        logger.warning("checkpoint class names differ from the dataset's; using the dataset's")
    device = select_device(params.device)
    model = model_from_checkpoint(ckpt).to(device)
    imgsz = params.imgsz or int(ckpt["config"].get("imgsz") or image_cache.imgsz)
    images, how = build_eval_images(image_cache, params.split, imgsz)
    logger.info(
        "evaluating at imgsz %d (%s) from %s, %s batches of %d, %s metric rules",
        imgsz, "evaluation.imgsz" if params.imgsz else "training size", how,
        "rectangular" if params.rect else "square", params.batch_size, params.protocol,
    )  # fmt: skip
    loader = build_letterbox_loader(
        images, params.batch_size, rect=params.rect, workers=params.workers
    )
    result = evaluate(
        model, loader, names, conf=params.conf, iou=params.iou, max_det=params.max_det,
        verbose=params.verbose, protocol=params.protocol,
    )  # fmt: skip
    metrics = dict(result.metrics)
    if params.coco_eval:
        metrics.update(
            coco_evaluate(result.images, result.ground_truth, result.predictions, params.max_det)
        )
    metrics.update({f"speed_ms/{key}": value for key, value in result.speed.items()})
    curves = result.curves
    class_names = [names[c] for c in curves.classes]
    return {
        "metrics": metrics,
        "per_class_metrics": result.per_class,
        "pr_curve_data": pr_curve_table(result),
        "val_predictions": result.predictions,
        "pr_curve_plot": plot_pr_curve(
            curves.confidence_axis, curves.pr_precision, curves.ap[:, 0], class_names
        ),
        "f1_curve_plot": plot_metric_curve(curves.confidence_axis, curves.f1_curve, class_names),
        "confusion_matrix_plot": plot_confusion_matrix(
            result.confusion.matrix, names, all_classes=params.confusion_all_classes
        ),
        "val_predictions_plot": prediction_grid(result, image_cache, params.plot_images),
    }
