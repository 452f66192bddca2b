"""The ``preprocessing`` pipeline: image cache for training/evaluation and the mosaic preview."""

from yolo_mlops.pipelines.preprocess.pipeline import create_pipeline

__all__ = ["create_pipeline"]
