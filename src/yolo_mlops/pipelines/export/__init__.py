"""The ``export`` pipeline: the trained checkpoint as ONNX (fp32 and INT8), with parity checks."""

from yolo_mlops.pipelines.export.pipeline import create_pipeline

__all__ = ["create_pipeline"]
