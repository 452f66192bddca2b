"""The YOLO11 library: model, detection, training, evaluation, checkpoints (torch; no kedro).

The public API; the subpackages (``model``, ``data``, ``io``, ``eval``, ``train``, ``export``)
hold the rest (see ``docs/architecture.md``).

The names below are resolved on first access (PEP 562), so importing a torch-free subpackage
(``yolo_mlops.yolo.export.runtime``, the ONNX Runtime serving path) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name → the module that defines it.
_EXPORTS = {
    "ImageDetections": "yolo_mlops.yolo.inference",
    "detect": "yolo_mlops.yolo.inference",
    "detect_images": "yolo_mlops.yolo.inference",
    "load_checkpoint": "yolo_mlops.yolo.io.checkpoint",
    "model_from_checkpoint": "yolo_mlops.yolo.io.checkpoint",
    "read_checkpoint": "yolo_mlops.yolo.io.checkpoint",
    "save_checkpoint": "yolo_mlops.yolo.io.checkpoint",
    "decode": "yolo_mlops.yolo.model.decode",
    "YOLO11": "yolo_mlops.yolo.model.network",
    "build_model": "yolo_mlops.yolo.model.network",
    "non_max_suppression": "yolo_mlops.yolo.model.postprocess",
    "scale_boxes": "yolo_mlops.yolo.model.postprocess",
    "model_summary": "yolo_mlops.yolo.model.summary",
    "TrainConfig": "yolo_mlops.yolo.train.config",
    "Trainer": "yolo_mlops.yolo.train.trainer",
}

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

if TYPE_CHECKING:  # static tools see the eager imports
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


def __getattr__(name: str) -> Any:
    """Import the public name's module on first access and cache the name here."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
