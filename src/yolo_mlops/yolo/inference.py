"""The one inference path: letterboxed images → model → decode → NMS → boxes in original pixels.

Evaluation (:func:`yolo_mlops.yolo.eval.evaluate.evaluate`), the registered MLflow model and the
inference benchmark all call these two functions, so what a reviewer measures is what serving
runs (design §2):

* :func:`detect` takes a batch that is already letterboxed (``uint8 [B, 3, H, W]`` RGB, H and W
  multiples of 32) and returns per-image detections in that input's pixels; it can time the
  preprocess / inference (forward + decode) / NMS split.
* :func:`detect_images` takes decoded images of any size (HWC BGR ``uint8``), letterboxes each to
  a square ``imgsz`` canvas, runs :func:`detect` and maps the boxes back to original pixels.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from yolo_mlops.yolo.data.letterbox import letterbox
from yolo_mlops.yolo.model.anchors import DEFAULT_STRIDES
from yolo_mlops.yolo.model.decode import decode
from yolo_mlops.yolo.model.postprocess import non_max_suppression, scale_boxes

#: Keys of the timing split :func:`detect` adds to (seconds, summed over calls).
TIMING_KEYS = ("preprocess", "inference", "nms")


@dataclass
class ImageDetections:
    """Detections of one image in its original pixels.

    Attributes:
        boxes: ``[n, 4]`` float32 x1, y1, x2, y2.
        scores: ``[n]`` float32 confidences.
        classes: ``[n]`` int64 class ids.
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_device(model: nn.Module) -> torch.device:
    """Where the model's weights live (CPU for a model without any)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def model_strides(model: nn.Module) -> list[int]:
    """The strides of a model's head maps (8, 16, 32 for YOLO11)."""
    return [int(s) for s in getattr(model, "stride", DEFAULT_STRIDES)]


@torch.inference_mode()
def detect(
    model: nn.Module,
    images: torch.Tensor,
    *,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
    multi_label: bool = False,
    num_classes: int | None = None,
    times: MutableMapping[str, float] | None = None,
) -> list[torch.Tensor]:
    """Detections of a letterboxed batch, in input pixels.

    Args:
        model: a YOLO11 in eval mode (its ``forward`` returns the three raw maps).
        images: ``uint8 [B, 3, H, W]`` RGB (or float already in [0, 1]); moved to the model's
            device here.
        conf, iou, max_det, multi_label: NMS settings (design §2).
        num_classes: when given, a model predicting another class count is an error.
        times: if given, seconds are added under ``preprocess`` (to device, /255),
            ``inference`` (forward + decode: the reference's model returns decoded boxes) and
            ``nms``.

    Returns:
        Per image ``[n, 6]`` float: x1, y1, x2, y2 (input pixels), score, class id.
    """
    device = model_device(model)
    start = time.perf_counter()
    batch = images.to(device, non_blocking=True)
    batch = batch.float() / 255 if not batch.is_floating_point() else batch.float()
    _sync(device)
    after_preprocess = time.perf_counter()
    decoded = decode(model(batch), model_strides(model))  # [B, 4 + nc, A]
    _sync(device)
    after_inference = time.perf_counter()
    if num_classes is not None and decoded.shape[1] - 4 != num_classes:
        raise ValueError(
            f"the model predicts {decoded.shape[1] - 4} classes but {num_classes} class names "
            "were given; evaluate on a dataset with the model's classes"
        )
    detections = non_max_suppression(
        decoded, conf=conf, iou=iou, max_det=max_det, multi_label=multi_label
    )
    _sync(device)
    if times is not None:
        times["preprocess"] = times.get("preprocess", 0.0) + after_preprocess - start
        times["inference"] = times.get("inference", 0.0) + after_inference - after_preprocess
        times["nms"] = times.get("nms", 0.0) + time.perf_counter() - after_inference
    return detections


def detect_images(
    model: nn.Module,
    images: Sequence[np.ndarray],
    imgsz: int,
    *,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
) -> list[ImageDetections]:
    """Detections of decoded images (HWC BGR uint8, any sizes) in their original pixels.

    Each image is letterboxed to a square ``imgsz`` canvas (scaled up or down to fit, centred,
    padded with 114) as the reference's predict mode does; the batch runs through :func:`detect`.
    """
    if not images:
        return []
    boxed = [letterbox(image, imgsz, scaleup=True, center=True) for image in images]
    batch = np.stack([item.image[..., ::-1] for item in boxed])  # [B, S, S, 3] RGB
    tensor = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)  # [B, 3, S, S]
    found = detect(model, tensor, conf=conf, iou=iou, max_det=max_det)
    out = []
    for image, item, found_rows in zip(images, boxed, found, strict=True):
        rows = found_rows.cpu()  # [n, 6] input pixels
        boxes = scale_boxes(rows[:, :4], item.gain, item.pad, image.shape[:2])
        out.append(
            ImageDetections(
                boxes=boxes.numpy().astype(np.float32),
                scores=rows[:, 4].numpy().astype(np.float32),
                classes=rows[:, 5].long().numpy(),
            )
        )
    return out
