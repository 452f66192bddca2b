"""Anchor points and the distance ↔ box transforms shared by decoding and the loss.

YOLO11 is anchor-free: every cell of every head level is one "anchor point" at the cell centre,
and the head predicts the distances (left, top, right, bottom) from that point to the box sides.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

DEFAULT_STRIDES = (8, 16, 32)


def make_anchors(
    feature_maps: Sequence[torch.Tensor],
    strides: Sequence[int] = DEFAULT_STRIDES,
    offset: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor points of all levels, in grid units, and the stride of each.

    Args:
        feature_maps: the head maps ``[B, C, H_i, W_i]`` (only their shapes, dtype and device
            are used).
        strides: the stride of each level in input pixels.
        offset: position of the point inside its cell (0.5 = centre).

    Returns:
        ``points [A, 2]`` as (x, y) in grid units of their own level, row-major per level (y outer,
        x inner), levels in order; and ``stride_per_anchor [A, 1]``. ``A = Σ H_i·W_i``.
    """
    points, stride_per_anchor = [], []
    for feature, stride in zip(feature_maps, strides, strict=True):
        _, _, height, width = feature.shape
        dtype, device = feature.dtype, feature.device
        xs = torch.arange(width, device=device, dtype=dtype) + offset
        ys = torch.arange(height, device=device, dtype=dtype) + offset
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack((grid_x, grid_y), -1).view(-1, 2))
        stride_per_anchor.append(
            torch.full((height * width, 1), float(stride), dtype=dtype, device=device)
        )
    return torch.cat(points), torch.cat(stride_per_anchor)


def dist2bbox(
    distances: torch.Tensor, points: torch.Tensor, xywh: bool = True, dim: int = -1
) -> torch.Tensor:
    """Distances (l, t, r, b) from ``points`` → boxes, in the same units as the inputs.

    ``distances`` and ``points`` broadcast along ``dim`` (size 4 and 2). Returns (cx, cy, w, h)
    when ``xywh`` else (x1, y1, x2, y2).
    """
    left_top, right_bottom = distances.chunk(2, dim)
    top_left = points - left_top
    bottom_right = points + right_bottom
    if xywh:
        return torch.cat(((top_left + bottom_right) / 2, bottom_right - top_left), dim)
    return torch.cat((top_left, bottom_right), dim)


def bbox2dist(points: torch.Tensor, boxes: torch.Tensor, max_distance: float) -> torch.Tensor:
    """xyxy boxes → distances (l, t, r, b) from ``points``, clamped to ``[0, max_distance]``."""
    top_left, bottom_right = boxes.chunk(2, -1)
    return torch.cat((points - top_left, bottom_right - points), -1).clamp_(0, max_distance)
