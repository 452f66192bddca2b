"""Box formats and overlaps.

The project has one internal box format: ``xyxy`` in pixels (x1, y1, x2, y2 with x2 >= x1).
Everything else is converted at the edges with the functions below, which are named for what
they do. Every function works on ``torch.Tensor`` and on ``numpy.ndarray`` alike (the result has
the input's type) and on any leading shape ``[..., 4]``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

Boxes = torch.Tensor | np.ndarray


def _empty_like(boxes: Boxes) -> Boxes:
    return boxes.clone() if isinstance(boxes, torch.Tensor) else np.copy(boxes)


def xywh_to_xyxy(boxes: Boxes) -> Boxes:
    """(centre-x, centre-y, width, height) → (x1, y1, x2, y2), same units."""
    out = _empty_like(boxes)
    half_w, half_h = boxes[..., 2] / 2, boxes[..., 3] / 2
    out[..., 0] = boxes[..., 0] - half_w
    out[..., 1] = boxes[..., 1] - half_h
    out[..., 2] = boxes[..., 0] + half_w
    out[..., 3] = boxes[..., 1] + half_h
    return out


def xyxy_to_xywh(boxes: Boxes) -> Boxes:
    """(x1, y1, x2, y2) → (centre-x, centre-y, width, height), same units."""
    out = _empty_like(boxes)
    out[..., 0] = (boxes[..., 0] + boxes[..., 2]) / 2
    out[..., 1] = (boxes[..., 1] + boxes[..., 3]) / 2
    out[..., 2] = boxes[..., 2] - boxes[..., 0]
    out[..., 3] = boxes[..., 3] - boxes[..., 1]
    return out


def xywhn_to_xyxy(boxes: Boxes, width: float, height: float) -> Boxes:
    """YOLO label format (normalised centre/size) → xyxy in pixels of a ``width × height`` image."""
    out = xywh_to_xyxy(boxes)
    out[..., 0::2] *= width
    out[..., 1::2] *= height
    return out


def xyxy_to_xywhn(boxes: Boxes, width: float, height: float) -> Boxes:
    """xyxy in pixels of a ``width × height`` image → YOLO label format (normalised centre/size)."""
    out = xyxy_to_xywh(boxes)
    out[..., 0::2] /= width
    out[..., 1::2] /= height
    return out


def xyxyn_to_xyxy(boxes: Boxes, width: float, height: float) -> Boxes:
    """Normalised xyxy → xyxy in pixels of a ``width × height`` image."""
    out = _empty_like(boxes)
    out[..., 0::2] = boxes[..., 0::2] * width
    out[..., 1::2] = boxes[..., 1::2] * height
    return out


def xyxy_to_xyxyn(boxes: Boxes, width: float, height: float) -> Boxes:
    """xyxy in pixels of a ``width × height`` image → normalised xyxy."""
    out = _empty_like(boxes)
    out[..., 0::2] = boxes[..., 0::2] / width
    out[..., 1::2] = boxes[..., 1::2] / height
    return out


def clip_boxes(boxes: Boxes, width: float, height: float) -> Boxes:
    """Clip xyxy boxes to the image ``[0, width] × [0, height]``; returns a new array/tensor."""
    out = _empty_like(boxes)
    if isinstance(boxes, torch.Tensor):
        out[..., 0::2] = boxes[..., 0::2].clamp(0, width)
        out[..., 1::2] = boxes[..., 1::2].clamp(0, height)
    else:
        out[..., 0::2] = boxes[..., 0::2].clip(0, width)
        out[..., 1::2] = boxes[..., 1::2].clip(0, height)
    return out


def box_area(boxes: Boxes) -> Boxes:
    """Area of xyxy boxes, ``[...]``."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_iou(boxes1: Boxes, boxes2: Boxes, eps: float = 1e-7) -> Boxes:
    """Pairwise IoU of xyxy boxes: ``[N, 4] × [M, 4] → [N, M]``; the one IoU of the project.

    Tensors stay tensors (dtype and device kept, differentiable); arrays (evaluation) are
    computed in float64. Degenerate boxes have area 0.
    """
    if isinstance(boxes1, torch.Tensor):
        top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
        bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
        inter = (bottom_right - top_left).clamp(min=0).prod(-1)
        area1 = (boxes1[:, 2:] - boxes1[:, :2]).clamp(min=0).prod(-1)
        area2 = (boxes2[:, 2:] - boxes2[:, :2]).clamp(min=0).prod(-1)
        return inter / (area1[:, None] + area2[None, :] - inter + eps)
    first = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    second = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(first[:, None, :2], second[None, :, :2])
    bottom_right = np.minimum(first[:, None, 2:], second[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area1 = (first[:, 2:] - first[:, :2]).clip(0).prod(axis=1)
    area2 = (second[:, 2:] - second[:, :2]).clip(0).prod(axis=1)
    return inter / (area1[:, None] + area2[None, :] - inter + eps)


def bbox_ciou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU of matching xyxy boxes, elementwise over ``[..., 4]`` → ``[...]``.

    CIoU = IoU − (ρ²/c² + α·v) with ρ the centre distance, c the enclosing-box diagonal,
    v = (4/π²)·(atan(w₂/h₂) − atan(w₁/h₁))² and α = v / (v − IoU + 1 + eps) taken without gradient.
    ``eps`` is added to heights, to the union and to c². Identical boxes give 1.
    """
    x1a, y1a, x2a, y2a = boxes1.unbind(-1)
    x1b, y1b, x2b, y2b = boxes2.unbind(-1)
    wa, ha = x2a - x1a, y2a - y1a + eps
    wb, hb = x2b - x1b, y2b - y1b + eps

    inter = (torch.minimum(x2a, x2b) - torch.maximum(x1a, x1b)).clamp(min=0) * (
        torch.minimum(y2a, y2b) - torch.maximum(y1a, y1b)
    ).clamp(min=0)
    union = wa * ha + wb * hb - inter + eps
    iou = inter / union

    enclose_w = torch.maximum(x2a, x2b) - torch.minimum(x1a, x1b)
    enclose_h = torch.maximum(y2a, y2b) - torch.minimum(y1a, y1b)
    diag_sq = enclose_w**2 + enclose_h**2 + eps
    centre_sq = ((x1b + x2b - x1a - x2a) ** 2 + (y1b + y2b - y1a - y2a) ** 2) / 4
    v = (4 / math.pi**2) * (torch.atan(wb / hb) - torch.atan(wa / ha)).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (centre_sq / diag_sq + v * alpha)
