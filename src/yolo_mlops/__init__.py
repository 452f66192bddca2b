"""yolo-mlops: a Kedro project that trains, tracks and registers YOLO11 detectors."""

__version__ = "0.1.0"
