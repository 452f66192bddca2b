"""The YOLO11 library: model, decoding, post-processing, checkpoints (torch only, no kedro)."""

from yolo_mlops.yolo.io.checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from yolo_mlops.yolo.model.decode import decode
from yolo_mlops.yolo.model.network import YOLO11, build_model
from yolo_mlops.yolo.model.postprocess import non_max_suppression, scale_boxes
from yolo_mlops.yolo.model.summary import model_summary

__all__ = [
    "YOLO11",
    "build_model",
    "decode",
    "load_checkpoint",
    "model_from_checkpoint",
    "model_summary",
    "non_max_suppression",
    "read_checkpoint",
    "save_checkpoint",
    "scale_boxes",
]
