"""Wiring of the ``predict`` pipeline (tag ``predict``); not part of ``end_to_end``."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from yolo_mlops.pipelines.predict.nodes import predict_images


def create_pipeline(**kwargs) -> Pipeline:
    """params:predict, params:tracking (models:/ URIs) → detections (Parquet parts),
    predict_report, annotated_images."""
    return Pipeline(
        [
            Node(
                predict_images,
                inputs={"parameters": "params:predict", "tracking": "params:tracking"},
                outputs={
                    "detections": "detections",
                    "predict_report": "predict_report",
                    "annotated_images": "annotated_images",
                },
                name="predict_images",
                tags=["predict"],
            )
        ]
    )
