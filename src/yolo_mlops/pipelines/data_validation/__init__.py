"""The ``data_validation`` pipeline: validate_labels."""

from yolo_mlops.pipelines.data_validation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
