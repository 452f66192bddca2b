"""The ``training`` pipeline: train YOLO11 on the image cache (tag ``train``)."""

from yolo_mlops.pipelines.train.pipeline import create_pipeline

__all__ = ["create_pipeline"]
