"""Raw head maps → boxes and class probabilities (spec section 2).

Kept apart from the model so that ``forward`` has one output format in train and eval mode; the
loss uses the raw maps, inference calls :func:`decode` on them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from yolo_mlops.yolo.model.anchors import DEFAULT_STRIDES, dist2bbox, make_anchors

REG_MAX = 16


def flatten_maps(raw_maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[[B, C, H_i, W_i]] × levels → [B, C, A]``; levels in order, each row-major (y outer)."""
    batch, channels = raw_maps[0].shape[:2]
    return torch.cat([m.reshape(batch, channels, -1) for m in raw_maps], 2)


def dfl_expectation(box_logits: torch.Tensor, reg_max: int = REG_MAX) -> torch.Tensor:
    """Box logits ``[B, 4·reg_max, A]`` → expected distances ``[B, 4, A]`` in grid units.

    Softmax over the ``reg_max`` bins of each side (l, t, r, b), then the mean bin index: the same
    computation as the DFL layer with its fixed 0..reg_max-1 weights.
    """
    batch, _, anchors = box_logits.shape
    probs = box_logits.view(batch, 4, reg_max, anchors).softmax(2)
    bins = torch.arange(reg_max, dtype=probs.dtype, device=probs.device)
    return torch.einsum("bsra,r->bsa", probs, bins)


def decode(
    raw_maps: Sequence[torch.Tensor],
    strides: Sequence[int] = DEFAULT_STRIDES,
    reg_max: int = REG_MAX,
) -> torch.Tensor:
    """Decode the model's raw maps into ``[B, 4 + nc, A]``.

    Rows 0..3 are (centre-x, centre-y, width, height) in input pixels, the remaining ``nc`` rows are
    class probabilities (sigmoid; YOLO11 has no objectness). ``A = Σ H_i·W_i`` (8400 at 640×640).
    Half/bfloat16 maps (autocast) are decoded in float32 and give a float32 result.
    """
    if raw_maps[0].dtype in (torch.float16, torch.bfloat16):
        # Pixel coordinates up to ~1000 need float32: bf16 would round them to whole 4-8 px steps.
        raw_maps = [m.float() for m in raw_maps]
    flat = flatten_maps(raw_maps)  # [B, 4·reg_max + nc, A]
    box_logits, cls_logits = flat.split((4 * reg_max, flat.shape[1] - 4 * reg_max), 1)
    points, stride = make_anchors(raw_maps, strides, 0.5)  # [A, 2], [A, 1]
    distances = dfl_expectation(box_logits, reg_max)  # [B, 4, A] grid units
    boxes = dist2bbox(distances, points.T, xywh=True, dim=1) * stride.T  # [B, 4, A] pixels
    return torch.cat((boxes, cls_logits.sigmoid()), 1)
