"""Evaluation node: a checkpoint on the validation split of the image cache → metrics and plots.

A Kedro adapter: :mod:`.evaluation` evaluates (which checkpoint, at which size, with which
settings), :mod:`.reports` turns the result into the catalog's outputs.
"""

from __future__ import annotations

from typing import Any

from yolo_mlops.pipelines.evaluate.evaluation import BLOCK, EvaluationParams, evaluate_cache
from yolo_mlops.pipelines.evaluate.reports import evaluation_outputs
from yolo_mlops.pipelines.params import parse_params
from yolo_mlops.yolo.data.image_cache import ImageCache


def evaluate_model(
    image_cache: ImageCache,
    parameters: dict[str, Any],
    model_checkpoint: dict[str, Any] | None = None,
    tracking_uri: str | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint, an exported file or a registered version on ``evaluation.split``
    of the image cache.

    Args:
        image_cache: the preprocessed images and labels (``image_cache`` catalog entry).
        parameters: the ``evaluation`` block (see :class:`EvaluationParams`).
        model_checkpoint: the trainer's checkpoint dict (design §7), or ``None``.
        tracking_uri: ``tracking.uri``: the registry a ``models:/`` checkpoint is read from
            (``MLFLOW_TRACKING_URI`` wins; None: the project's store).

    Returns:
        The outputs by catalog name: ``metrics`` (dict of fractions and speed_ms/*),
        ``per_class_metrics``, ``pr_curve_data``, ``val_predictions`` (DataFrames) and the plots
        ``pr_curve_plot``, ``f1_curve_plot``, ``confusion_matrix_plot``, ``val_predictions_plot``.
    """
    params = parse_params(EvaluationParams, parameters, BLOCK)
    result = evaluate_cache(image_cache, params, model_checkpoint, {"uri": tracking_uri})
    return evaluation_outputs(result, image_cache, params)
