"""Validation loop: letterboxed batches → model → decode → NMS → original pixels → metrics.

``evaluate`` is what ``yolo val`` does (design §6): NMS at conf 0.001, IoU 0.7, max_det 300,
multi-label when there is more than one class; predictions and ground truth are mapped back to
original image pixels, then matched and scored with the rules of ``protocol`` (8.3.0 or 8.4.190,
:mod:`yolo_mlops.yolo.eval.protocol`). Rectangular batches at any size come from
:mod:`yolo_mlops.yolo.data.eval_data`. The trainer calls it every epoch on the
EMA model, the evaluation pipeline once on a checkpoint or an exported ``.onnx`` (an
:class:`~yolo_mlops.yolo.export.runtime.OnnxRuntimeDetector`: the same batches, NMS and metric
rules; only the forward pass differs).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from yolo_mlops.yolo.eval.metrics import APResult, ConfusionMatrix, DetectionStats, format_table
from yolo_mlops.yolo.eval.protocol import MetricRules, metric_rules
from yolo_mlops.yolo.inference import TIMING_KEYS, detect
from yolo_mlops.yolo.model.postprocess import scale_boxes

if TYPE_CHECKING:
    from yolo_mlops.yolo.export.runtime import OnnxRuntimeDetector

logger = logging.getLogger(__name__)

PREDICTION_COLUMNS = [
    "image_id",
    "image_path",
    "class_id",
    "class_name",
    "score",
    "x1",
    "y1",
    "x2",
    "y2",
]
GROUND_TRUTH_COLUMNS = ["image_id", "class_id", "x1", "y1", "x2", "y2"]
IMAGE_COLUMNS = ["image_id", "image_path", "height", "width"]


@dataclass
class EvalResult:
    """Everything one evaluation produces.

    Attributes:
        metrics: {"precision", "recall", "mAP50", "mAP50-95", "mAP75", "fitness"}, fractions.
        per_class: the reference's table ("all" row first): class, images, instances, precision,
            recall, mAP50, mAP50-95.
        curves: P/R/F1 versus confidence and the PR curves (:class:`APResult`, IoU 0.5).
        confusion: confusion matrix at conf 0.25 / IoU 0.45 (``[nc+1, nc+1]``, [pred, true]).
        predictions: one row per kept detection: image_id (cache index), image_path, class_id,
            class_name, score, x1, y1, x2, y2 in original image pixels.
        ground_truth: one row per GT box: image_id, class_id, x1..y2 original pixels.
        images: one row per evaluated image: image_id, image_path, height, width (original).
        speed: milliseconds per image: preprocess (to device, /255), inference (forward +
            decode), nms.
        names: class names indexed by class id.
    """

    metrics: dict[str, float]
    per_class: pd.DataFrame
    curves: APResult
    confusion: ConfusionMatrix
    predictions: pd.DataFrame
    ground_truth: pd.DataFrame
    images: pd.DataFrame
    speed: dict[str, float]
    names: list[str] = field(default_factory=list)


def _image_path(loader: Any, batch: Mapping[str, Any], position: int, image_id: int) -> str:
    """Path of one batch image: from the batch (``paths``), else from the image cache behind the
    loader (``loader.cache`` or ``loader.dataset.cache``), else the image id."""
    paths = batch.get("paths")
    if paths is not None:
        return str(paths[position])
    cache = getattr(loader, "cache", None) or getattr(
        getattr(loader, "dataset", None), "cache", None
    )
    if cache is not None and hasattr(cache, "path"):
        return str(cache.path(image_id))
    return str(image_id)


@torch.inference_mode()
def evaluate(
    model: nn.Module | OnnxRuntimeDetector,
    loader: Iterable[Mapping[str, Any]],
    names: list[str],
    *,
    conf: float = 0.001,
    iou: float = 0.7,
    max_det: int = 300,
    multi_label: bool = True,
    verbose: bool = False,
    protocol: str = "8.3.0",
) -> EvalResult:
    """Run the model over an eval loader and compute the detection metrics.

    Args:
        model: a YOLO11 whose ``forward`` returns the 3 raw maps, put in eval mode here (and
            restored afterwards); or an exported model
            (:class:`~yolo_mlops.yolo.export.runtime.OnnxRuntimeDetector`, run as it is).
        loader: batches (moved to the model's device) of ``images`` uint8 ``[B,3,H,W]`` RGB,
            ``targets`` float ``[N,6]`` (batch_index, class_id, x1,y1,x2,y2 input px),
            ``indices`` int64 ``[B]``, ``orig_shapes`` int64 ``[B,2]`` (h, w), ``ratio_pad``
            float ``[B,3]`` (gain, pad_x, pad_y) with ``input_px = orig_px * gain + pad``.
            Optional ``paths``; otherwise image paths come from the loader's image cache.
        names: class names (``len(names)`` = number of classes).
        conf, iou, max_det: NMS settings (validation defaults of the reference).
        multi_label: one candidate per (anchor, class) above ``conf``; used only when nc > 1.
        verbose: also log one table row per class (the "all" row is always logged).
        protocol: the reference version whose metric rules apply, "8.3.0" or "8.4.190"
            (:mod:`yolo_mlops.yolo.eval.protocol`; the figures of ``val`` in that version).

    Returns:
        An :class:`EvalResult`; boxes in original image pixels.
    """
    names = list(names)
    collector = _Collector(loader, names, metric_rules(protocol))
    nms = {"conf": conf, "iou": iou, "max_det": max_det, "num_classes": len(names)}
    nms["multi_label"] = multi_label and len(names) > 1  # one class: one candidate per anchor
    seconds = _predict(model, loader, collector, nms)
    metrics, per_class, curves = collector.stats.compute(names)
    seen = max(collector.stats.images_seen, 1)
    speed = {key: 1000 * value / seen for key, value in seconds.items()}
    table = per_class if verbose else per_class.iloc[:1]
    logger.info("validation results:\n%s", format_table(table))
    logger.info(
        "speed: %.1f ms preprocess, %.1f ms inference, %.1f ms NMS per image",
        speed["preprocess"], speed["inference"], speed["nms"],
    )  # fmt: skip
    return EvalResult(
        metrics=metrics,
        per_class=per_class,
        curves=curves,
        confusion=collector.stats.confusion,
        predictions=collector.predictions(),
        ground_truth=collector.ground_truth(),
        images=collector.images(),
        speed=speed,
        names=names,
    )


def _predict(
    model: nn.Module | OnnxRuntimeDetector,
    loader: Iterable[Mapping[str, Any]],
    collector: _Collector,
    nms: dict,
) -> dict[str, float]:
    """Detect on every batch in eval mode (restored after) into ``collector``; seconds by phase."""
    module = model if isinstance(model, nn.Module) else None  # an exported graph has no mode
    was_training = module is not None and module.training
    if module is not None:
        module.eval()
    seconds = dict.fromkeys(TIMING_KEYS, 0.0)
    try:
        for batch in tqdm(loader, desc="evaluate", leave=False, disable=None):
            collector.add_batch(batch, detect(model, batch["images"], **nms, times=seconds))
    finally:
        if module is not None:
            module.train(was_training)
    return seconds


def _class_name(names: list[str], class_id: int) -> str:
    return names[class_id] if 0 <= class_id < len(names) else f"class{class_id}"


def _stack(rows: list[np.ndarray], width: int) -> np.ndarray:
    return np.concatenate(rows, 0) if rows else np.zeros((0, width))


class _Collector:
    """Maps each batch back to original pixels, feeds :class:`DetectionStats`, keeps the rows."""

    def __init__(self, loader: Any, names: list[str], rules: MetricRules) -> None:
        self.loader = loader
        self.names = names
        self.rules = rules
        self.stats = DetectionStats(len(names), match=rules.match, ap_rule=rules.compute_ap)
        self.prediction_rows: list[np.ndarray] = []
        self.prediction_paths: list[str] = []
        self.truth_rows: list[np.ndarray] = []
        self.image_rows: list[tuple[int, str, int, int]] = []

    def add_batch(self, batch: Mapping[str, Any], detections: list[torch.Tensor]) -> None:
        """Add one batch: ``detections`` = NMS output, ``[n, 6]`` per image in input pixels."""
        targets = batch["targets"].detach().cpu().float()
        orig_shapes = batch["orig_shapes"].detach().cpu().long()
        ratio_pad = batch["ratio_pad"].detach().cpu().float()
        indices = batch.get("indices")
        for position, raw_detection in enumerate(detections):
            image_id = int(indices[position]) if indices is not None else len(self.image_rows)
            height, width = (int(v) for v in orig_shapes[position])
            gain = float(ratio_pad[position, 0])
            pad = (float(ratio_pad[position, 1]), float(ratio_pad[position, 2]))
            path = _image_path(self.loader, batch, position, image_id)
            self.image_rows.append((image_id, path, height, width))

            mine = targets[:, 0] == position
            true_classes = targets[mine, 1].long().numpy()
            true_boxes = scale_boxes(targets[mine, 2:6], gain, pad, (height, width)).numpy()
            detection = raw_detection.detach().float().cpu()
            pred_boxes = scale_boxes(detection[:, :4], gain, pad, (height, width)).numpy()
            pred_scores = detection[:, 4].numpy()
            pred_classes = detection[:, 5].long().numpy()
            if self.rules.clip_before_matching:
                self.stats.update(pred_boxes, pred_scores, pred_classes, true_boxes, true_classes)
            else:  # match as in the letterboxed input: nothing clipped to the image
                self.stats.update(
                    scale_boxes(detection[:, :4], gain, pad, (height, width), clip=False).numpy(),
                    pred_scores,
                    pred_classes,
                    scale_boxes(targets[mine, 2:6], gain, pad, (height, width), clip=False).numpy(),
                    true_classes,
                )

            if count := len(pred_classes):
                columns = (np.full(count, image_id), pred_classes, pred_scores, pred_boxes)
                self.prediction_rows.append(np.column_stack(columns).astype(np.float64))
                self.prediction_paths.extend([path] * count)
            if len(true_classes):
                columns = (np.full(len(true_classes), image_id), true_classes, true_boxes)
                self.truth_rows.append(np.column_stack(columns).astype(np.float64))

    def predictions(self) -> pd.DataFrame:
        rows = _stack(self.prediction_rows, 7)
        return pd.DataFrame(
            {
                "image_id": rows[:, 0].astype(np.int64),
                "image_path": pd.Series(self.prediction_paths, dtype=object),
                "class_id": rows[:, 1].astype(np.int64),
                "class_name": [_class_name(self.names, int(c)) for c in rows[:, 1]],
                "score": rows[:, 2],
                "x1": rows[:, 3],
                "y1": rows[:, 4],
                "x2": rows[:, 5],
                "y2": rows[:, 6],
            },
            columns=PREDICTION_COLUMNS,
        )

    def ground_truth(self) -> pd.DataFrame:
        frame = pd.DataFrame(_stack(self.truth_rows, 6), columns=GROUND_TRUTH_COLUMNS)
        return frame.astype({"image_id": np.int64, "class_id": np.int64})

    def images(self) -> pd.DataFrame:
        return pd.DataFrame(self.image_rows, columns=IMAGE_COLUMNS)
