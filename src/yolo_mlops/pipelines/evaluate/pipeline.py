"""Wiring of the ``evaluation`` pipeline (tag ``evaluate``).

Two shapes of the same node ``evaluate_model``:

* default (``create_pipeline()``, used by the ``training`` chain): the node takes the trainer's
  ``model_checkpoint``, so it runs after ``train_model``; ``evaluation.checkpoint`` still overrides
  which file is evaluated.
* ``create_pipeline(standalone=True)``: no ``model_checkpoint`` input, so nothing has to be
  trained first; the model is ``evaluation.checkpoint`` (default ``data/06_models/best.pt``).
  Kedro has no optional inputs, and a free ``model_checkpoint`` input would be loaded (and fail)
  before the node could look at ``evaluation.checkpoint``; hence the second shape.

Both read ``tracking.uri`` (only the URI: the rest of the tracking block does not change what is
evaluated) for an ``evaluation.checkpoint`` that names a registered version (``models:/...``).
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from yolo_mlops.pipelines.evaluate.nodes import evaluate_model

OUTPUTS = (
    "metrics",
    "per_class_metrics",
    "pr_curve_data",
    "val_predictions",
    "pr_curve_plot",
    "f1_curve_plot",
    "confusion_matrix_plot",
    "val_predictions_plot",
)


def create_pipeline(standalone: bool = False, **kwargs) -> Pipeline:
    """image_cache (+ model_checkpoint unless ``standalone``) → metrics, tables, plots."""
    inputs = {
        "image_cache": "image_cache",
        "parameters": "params:evaluation",
        "tracking_uri": "params:tracking.uri",
    }
    if not standalone:
        inputs["model_checkpoint"] = "model_checkpoint"
    return Pipeline(
        [
            Node(
                evaluate_model,
                inputs=inputs,
                outputs={name: name for name in OUTPUTS},
                name="evaluate_model",
                tags=["evaluate"],
            )
        ]
    )
