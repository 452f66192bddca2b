"""Letterbox: fit an image into a fixed canvas without distorting it, and map boxes both ways.

Convention (shared with ``postprocess.scale_boxes``): ``input_px = orig_px * gain + pad`` where
``pad = (pad_x, pad_y)`` are the integer left/top borders. Integer pads make the inverse exact.

Torch-free (numpy and OpenCV only): the ONNX Runtime backend uses it without torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

PAD_VALUE = 114


@dataclass(frozen=True)
class LetterboxResult:
    """Output of :func:`letterbox`.

    Attributes:
        image: HWC uint8 canvas of shape ``(out_h, out_w, C)``.
        gain: scale applied to the source image (same on both axes).
        pad: ``(pad_x, pad_y)`` left/top border in pixels.
    """

    image: np.ndarray
    gain: float
    pad: tuple[int, int]


def letterbox(
    image: np.ndarray,
    new_shape: int | tuple[int, int],
    scaleup: bool = False,
    center: bool = True,
    pad_value: int = PAD_VALUE,
    *,
    stride: int | None = None,
) -> LetterboxResult:
    """Resize ``image`` (HWC uint8) to fit ``new_shape`` (h, w) keeping its aspect, then pad.

    Args:
        image: HWC uint8 image.
        new_shape: canvas size, an int for a square canvas or ``(h, w)``.
        scaleup: allow enlarging (training); ``False`` only shrinks (evaluation, design §5).
        center: pad both sides equally (left/top get the rounded-down half); else right/bottom.
        pad_value: grey level of the border (114 as in the spec).
        stride: if given, the image is scaled as for ``new_shape`` but the canvas shrinks to the
            smallest one whose margins to ``new_shape`` are multiples of ``stride`` (the
            reference predict's ``auto``): a 4:3 image at 640 gets a 480×640 canvas, not 640×640.
    """
    out_h, out_w = (new_shape, new_shape) if isinstance(new_shape, int) else new_shape
    height, width = image.shape[:2]
    gain = min(out_h / height, out_w / width)
    if not scaleup:
        gain = min(gain, 1.0)
    new_w, new_h = round(width * gain), round(height * gain)
    new_w, new_h = min(max(new_w, 1), out_w), min(max(new_h, 1), out_h)
    if stride:
        out_h, out_w = new_h + (out_h - new_h) % stride, new_w + (out_w - new_w) % stride
    if (new_w, new_h) != (width, height):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    pad_x = (out_w - new_w) // 2 if center else 0
    pad_y = (out_h - new_h) // 2 if center else 0
    canvas = np.full((out_h, out_w, *image.shape[2:]), pad_value, dtype=image.dtype)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = image
    return LetterboxResult(canvas, float(gain), (int(pad_x), int(pad_y)))


def letterbox_batch(
    images: Sequence[np.ndarray], imgsz: int, stride: int = 32
) -> tuple[np.ndarray, list[LetterboxResult]]:
    """Decoded images (HWC BGR uint8) → one model input ``uint8 [B, 3, H, W]`` RGB, as predict does.

    Images are scaled (up or down) to fit ``imgsz`` and centred. When they all have the same shape
    the canvas is the smallest stride multiple that holds them (``letterbox(..., stride=)``);
    otherwise it is the full ``imgsz`` square. Returns the batch and each image's letterbox.
    """
    same_shape = len({image.shape for image in images}) == 1
    boxed = [
        letterbox(image, imgsz, scaleup=True, center=True, stride=stride if same_shape else None)
        for image in images
    ]
    batch = np.stack([item.image for item in boxed])[..., ::-1]  # [B, H, W, 3] RGB
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2)), boxed


def letterbox_boxes(boxes: np.ndarray, gain: float, pad: tuple[float, float]) -> np.ndarray:
    """Map xyxy pixel boxes ``[n, 4]`` of the source image into the letterboxed canvas."""
    out = np.asarray(boxes, dtype=np.float32) * gain
    out[:, 0::2] += pad[0]
    out[:, 1::2] += pad[1]
    return out


def unletterbox_boxes(
    boxes: np.ndarray, gain: float, pad: tuple[float, float], shape: tuple[int, int] | None = None
) -> np.ndarray:
    """Inverse of :func:`letterbox_boxes`; clipped to the source ``shape = (h, w)`` if given."""
    out = np.asarray(boxes, dtype=np.float32).copy()
    out[:, 0::2] -= pad[0]
    out[:, 1::2] -= pad[1]
    out /= gain
    if shape is not None:
        out[:, 0::2] = out[:, 0::2].clip(0, shape[1])
        out[:, 1::2] = out[:, 1::2].clip(0, shape[0])
    return out


def resized_shape(height: int, width: int, imgsz: int) -> tuple[int, int]:
    """``(h, w)`` with the long side at ``imgsz``: ``min(ceil(side·r), imgsz)`` (design §5)."""
    ratio = imgsz / max(height, width)
    return min(math.ceil(height * ratio), imgsz), min(math.ceil(width * ratio), imgsz)


def resize_long_side(image: np.ndarray, imgsz: int) -> np.ndarray:
    """Resize HWC ``image`` so its long side is ``imgsz`` (aspect kept, INTER_LINEAR, design §5)."""
    height, width = image.shape[:2]
    new_h, new_w = resized_shape(height, width, imgsz)
    if (new_h, new_w) == (height, width):
        return image
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
