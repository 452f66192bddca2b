"""The YOLO11 library: model, detection, training, evaluation, checkpoints (torch; no kedro).

The public API; the subpackages (``model``, ``data``, ``io``, ``eval``, ``train``) hold the rest
(see ``docs/architecture.md``).
"""

from yolo_mlops.yolo.inference import ImageDetections, detect, detect_images
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
from yolo_mlops.yolo.train.config import TrainConfig
from yolo_mlops.yolo.train.trainer import Trainer

__all__ = [
    "YOLO11",
    "ImageDetections",
    "TrainConfig",
    "Trainer",
    "build_model",
    "decode",
    "detect",
    "detect_images",
    "load_checkpoint",
    "model_from_checkpoint",
    "model_summary",
    "non_max_suppression",
    "read_checkpoint",
    "save_checkpoint",
    "scale_boxes",
]
