"""Which images share an evaluation batch, and the canvas each batch is letterboxed into.

Rectangular batches (design §5, the reference's validation default): images are sorted by aspect
ratio ``h / w`` and cut into consecutive batches; each batch gets the smallest stride-multiple
canvas that holds its images at ``imgsz`` on the long side, plus half a stride of padding:

    shape = [max_ar, 1]        if every ratio in the batch is < 1 (all landscape)
            [1, 1 / min_ar]    if every ratio is > 1 (all portrait)
            [1, 1]             otherwise (square or mixed)
    canvas (h, w) = ceil(shape · imgsz / stride + pad) · stride

so a batch of 4:3 landscape images at 640 is 512 × 672 instead of 640 × 640, and a mixed batch is
672 × 672. Square batches keep the input order and an ``imgsz × imgsz`` canvas for every batch.
Batch composition changes only the padding around each image, never its scale (the letterbox does
not upscale), so the metrics do not depend on it beyond float noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RECT_PAD = 0.5  # fraction of a stride added around every rectangular batch (the reference's)
STRIDE = 32  # largest stride of YOLO11: canvas sides are multiples of it


@dataclass(frozen=True)
class BatchPlan:
    """Evaluation batches over ``N`` images.

    Attributes:
        batches: per batch, the image positions (int64, into the caller's image list), in order.
        shapes: per batch, the canvas ``(height, width)`` in pixels, multiples of the stride.
    """

    batches: list[np.ndarray]
    shapes: list[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.batches)

    def canvas_of(self) -> dict[int, tuple[int, int]]:
        """Image position → canvas ``(h, w)`` of the batch that holds it."""
        return {
            int(position): shape
            for batch, shape in zip(self.batches, self.shapes, strict=True)
            for position in batch
        }


def rect_canvas(
    aspect_ratios: np.ndarray, imgsz: int, stride: int = STRIDE, pad: float = RECT_PAD
) -> tuple[int, int]:
    """Canvas ``(h, w)`` of one rectangular batch whose images have ``aspect_ratios`` (h / w)."""
    ratios = np.asarray(aspect_ratios, dtype=np.float64)
    if ratios.size == 0:
        raise ValueError("a batch needs at least one image")
    low, high = float(ratios.min()), float(ratios.max())
    if high < 1:
        shape = (high, 1.0)
    elif low > 1:
        shape = (1.0, 1.0 / low)
    else:
        shape = (1.0, 1.0)
    height, width = (math.ceil(side * imgsz / stride + pad) * stride for side in shape)
    return int(height), int(width)


def plan_batches(
    orig_shapes: np.ndarray,
    batch_size: int,
    imgsz: int,
    *,
    rect: bool = True,
    stride: int = STRIDE,
    pad: float = RECT_PAD,
) -> BatchPlan:
    """Cut ``N`` images into evaluation batches.

    Args:
        orig_shapes: ``[N, 2]`` original ``(h, w)`` of every image, pixels.
        batch_size: images per batch (the last batch may be smaller).
        imgsz: long side the images are resized to, pixels.
        rect: rectangular batches sorted by aspect ratio (module docstring); ``False`` keeps the
            input order and an ``imgsz × imgsz`` canvas.
        stride: canvas sides are multiples of this; pad: stride fraction added (rect only).

    Returns:
        A :class:`BatchPlan`; every position ``0..N-1`` appears in exactly one batch.
    """
    if batch_size < 1 or imgsz < stride:
        raise ValueError(f"need batch_size >= 1 and imgsz >= {stride}, got {batch_size}, {imgsz}")
    shapes = np.asarray(orig_shapes, dtype=np.float64).reshape(-1, 2)
    if (shapes <= 0).any():
        raise ValueError("every original image shape must be positive")
    if not rect and imgsz % stride:
        raise ValueError(f"square evaluation needs imgsz divisible by {stride}, got {imgsz}")
    ratios = shapes[:, 0] / shapes[:, 1]
    # a stable sort: equal ratios keep the input order (they get the same canvas either way)
    order = np.argsort(ratios, kind="stable") if rect else np.arange(len(shapes))
    batches, canvases = [], []
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size].astype(np.int64)
        batches.append(batch)
        canvases.append(rect_canvas(ratios[batch], imgsz, stride, pad) if rect else (imgsz, imgsz))
    return BatchPlan(batches, canvases)
