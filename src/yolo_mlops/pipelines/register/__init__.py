"""Register pipeline: MLflow model logging, registry version, aliases and promotion gate."""

from yolo_mlops.pipelines.register.pipeline import create_pipeline

__all__ = ["create_pipeline"]
