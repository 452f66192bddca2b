"""The one inference path: letterboxed images → model → decode → NMS → boxes in original pixels.

Evaluation (:func:`yolo_mlops.yolo.eval.evaluate.evaluate`), the registered MLflow model and the
inference benchmark all call these functions, so what a reviewer measures is what serving runs
(design §2). Three backends run the model:

* ``torch``: a :class:`~yolo_mlops.yolo.model.network.YOLO11` (any ``nn.Module`` returning the
  three raw maps); decoding and NMS in torch;
* ``onnxruntime``: an exported ``.onnx`` opened as
  :class:`~yolo_mlops.yolo.export.runtime.OnnxRuntimeDetector`, whose graph returns the decoded
  predictions; NMS in numpy (:mod:`yolo_mlops.yolo.export.postprocess`, the same rules);
* ``openvino``: an OpenVINO IR ``.xml`` (or an ``.onnx``) opened as
  :class:`~yolo_mlops.yolo.export.openvino_ir.OpenVinoDetector` (the optional ``openvino``
  package); the same interface, NMS in numpy.

:func:`load_detector` opens any of them from a file. :func:`detect` takes a batch that is already
letterboxed (``uint8 [B, 3, H, W]`` RGB, H and W multiples of 32) and returns per-image detections
in that input's pixels, timing the preprocess / inference (forward + decode) / NMS split if asked.
:func:`detect_images` takes decoded images of any size (HWC BGR ``uint8``), letterboxes them as the
reference's predict does (a same-shape batch to the smallest stride multiple that holds it, e.g.
480×640 for a 4:3 image at 640; mixed shapes to the ``imgsz`` square), runs :func:`detect` and maps
the boxes back to original pixels.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from yolo_mlops.yolo.data.letterbox import letterbox_batch
from yolo_mlops.yolo.export import postprocess as numpy_postprocess
from yolo_mlops.yolo.export.postprocess import ImageDetections, to_original
from yolo_mlops.yolo.io.checkpoint import load_checkpoint
from yolo_mlops.yolo.model.anchors import DEFAULT_STRIDES
from yolo_mlops.yolo.model.decode import decode
from yolo_mlops.yolo.model.postprocess import non_max_suppression

if TYPE_CHECKING:
    from yolo_mlops.yolo.export.runtime import ExportedDetector

#: Keys of the timing split :func:`detect` adds to (seconds, summed over calls).
TIMING_KEYS = ("preprocess", "inference", "nms")
#: Backends :func:`load_detector` opens.
BACKENDS = ("torch", "onnxruntime", "openvino")
#: The backend a file suffix gets by default (anything else: ``torch``).
SUFFIX_BACKENDS = {".onnx": "onnxruntime", ".xml": "openvino"}

__all__ = [
    "BACKENDS",
    "TIMING_KEYS",
    "ImageDetections",
    "detect",
    "detect_images",
    "load_detector",
    "model_device",
    "model_strides",
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_device(model: nn.Module) -> torch.device:
    """Where the model's weights live (CPU for a model without any)."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def model_strides(model: Any) -> list[int]:
    """The strides of a model's head maps (8, 16, 32 for YOLO11), either backend."""
    strides = getattr(model, "strides", None) or getattr(model, "stride", DEFAULT_STRIDES)
    return [int(s) for s in strides]


def load_detector(
    source: str | os.PathLike[str],
    backend: str | None = None,
    *,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
    threads: int | None = None,
) -> nn.Module | ExportedDetector:
    """Open a model file for :func:`detect` / :func:`detect_images`.

    Args:
        source: a checkpoint (ours or Ultralytics' ``.pt``), an exported ``.onnx`` or an
            OpenVINO IR ``.xml``.
        backend: ``"torch"``, ``"onnxruntime"`` or ``"openvino"``; by default the one of the
            file's suffix (:data:`SUFFIX_BACKENDS`). ``openvino`` also runs an ``.onnx``.
        num_classes: when given, a model predicting another class count is an error naming
            the file.
        device: torch backend only (the model is BatchNorm-fused and moved there).
        threads: exported backends only: intra-op threads (default: all cores).
    """
    backend = backend or SUFFIX_BACKENDS.get(Path(source).suffix.lower(), "torch")
    # Runtimes imported here so that torch-only users need not load them.
    if backend == "onnxruntime":
        from yolo_mlops.yolo.export.runtime import OnnxRuntimeDetector

        return OnnxRuntimeDetector(source, num_classes=num_classes, threads=threads)
    if backend == "openvino":
        from yolo_mlops.yolo.export.openvino_ir import OpenVinoDetector

        return OpenVinoDetector(source, num_classes=num_classes, threads=threads)
    if backend != "torch":
        raise ValueError(f"unknown inference backend {backend!r}; choose one of {BACKENDS}")
    model = load_checkpoint(source).fuse().to(device).eval()
    if num_classes is not None and model.nc != num_classes:
        raise ValueError(
            f"{source}: the model predicts {model.nc} classes but {num_classes} were expected"
        )
    return model


def _check_classes(predicted: int, num_classes: int | None) -> None:
    if num_classes is not None and predicted != num_classes:
        raise ValueError(
            f"the model predicts {predicted} classes but {num_classes} class names "
            "were given; evaluate on a dataset with the model's classes"
        )


def _add_times(times: MutableMapping[str, float] | None, marks: Sequence[float]) -> None:
    """Add the intervals between the four ``perf_counter`` marks to ``times``."""
    if times is not None:
        for key, begin, end in zip(TIMING_KEYS, marks, marks[1:], strict=False):
            times[key] = times.get(key, 0.0) + end - begin


def _detect_exported(
    model: ExportedDetector, images: torch.Tensor, settings: dict[str, Any], times
) -> list[torch.Tensor]:
    """:func:`detect` for an exported model (any runtime): numpy in, numpy NMS, tensors out."""
    start = time.perf_counter()
    batch = images.cpu().numpy()
    if batch.dtype == np.uint8:
        batch = batch.astype(np.float32) / 255  # as the torch path: a division, bit for bit
    after_preprocess = time.perf_counter()
    decoded = model(batch)  # [B, 4 + nc, A]
    after_inference = time.perf_counter()
    _check_classes(decoded.shape[1] - 4, settings.pop("num_classes"))
    rows = numpy_postprocess.non_max_suppression(decoded, **settings)
    _add_times(times, (start, after_preprocess, after_inference, time.perf_counter()))
    return [torch.from_numpy(found) for found in rows]


@torch.inference_mode()
def detect(
    model: nn.Module | ExportedDetector,
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
        model: a YOLO11 in eval mode (its ``forward`` returns the three raw maps), or an
            exported model (:func:`load_detector`).
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
    settings = {"conf": conf, "iou": iou, "max_det": max_det, "multi_label": multi_label}
    if not isinstance(model, nn.Module):
        return _detect_exported(model, images, {**settings, "num_classes": num_classes}, times)
    device = model_device(model)
    start = time.perf_counter()
    batch = images.to(device, non_blocking=True)
    batch = batch.float() / 255 if not batch.is_floating_point() else batch.float()
    _sync(device)
    after_preprocess = time.perf_counter()
    decoded = decode(model(batch), model_strides(model))  # [B, 4 + nc, A]
    _sync(device)
    after_inference = time.perf_counter()
    _check_classes(decoded.shape[1] - 4, num_classes)
    detections = non_max_suppression(decoded, **settings)
    _sync(device)
    _add_times(times, (start, after_preprocess, after_inference, time.perf_counter()))
    return detections


def detect_images(
    model: nn.Module | ExportedDetector,
    images: Sequence[np.ndarray],
    imgsz: int,
    *,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
) -> list[ImageDetections]:
    """Detections of decoded images (HWC BGR uint8, any sizes) in their original pixels.

    Each image is scaled (up or down) to fit ``imgsz``, centred and padded with 114 as the
    reference's predict mode does; a batch of same-shape images (one image included) gets the
    smallest canvas whose sides are stride multiples, a mixed batch the ``imgsz`` square. The
    batch runs through :func:`detect` on either backend.
    """
    if not images:
        return []
    batch, boxed = letterbox_batch(images, imgsz, max(model_strides(model)))
    found = detect(model, torch.from_numpy(batch), conf=conf, iou=iou, max_det=max_det)
    return [
        to_original(rows.cpu().numpy(), item.gain, item.pad, image.shape[:2])
        for rows, item, image in zip(found, boxed, images, strict=True)
    ]
