"""The ``predict`` pipeline: batch prediction over a folder, glob or list of images."""

from yolo_mlops.pipelines.predict.pipeline import create_pipeline

__all__ = ["create_pipeline"]
