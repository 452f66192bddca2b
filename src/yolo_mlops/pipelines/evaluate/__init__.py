"""The ``evaluation`` pipeline: metrics, COCO cross-check and plots of a checkpoint."""

from yolo_mlops.pipelines.evaluate.pipeline import create_pipeline

__all__ = ["create_pipeline"]
