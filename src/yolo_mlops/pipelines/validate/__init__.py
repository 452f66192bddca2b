"""The ``data_validation`` pipeline: validate_labels."""

from yolo_mlops.pipelines.validate.pipeline import create_pipeline

__all__ = ["create_pipeline"]
