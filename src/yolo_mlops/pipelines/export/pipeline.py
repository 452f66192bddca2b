"""Wiring of the ``export`` pipeline (tag ``export``): one node, ``export_model``."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from yolo_mlops.pipelines.export.nodes import export_model


def create_pipeline(**kwargs) -> Pipeline:
    """model_checkpoint + image_cache → exported_models (ONNX files), export_report."""
    return Pipeline(
        [
            Node(
                export_model,
                inputs={
                    "model_checkpoint": "model_checkpoint",
                    "image_cache": "image_cache",
                    "parameters": "params:export",
                },
                outputs={"exported_models": "exported_models", "export_report": "export_report"},
                name="export_model",
                tags=["export"],
            )
        ]
    )
