"""Non-maximum suppression and mapping boxes back to the original image (spec section 6.1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import batched_nms

from yolo_mlops.yolo.boxes import clip_boxes, xywh_to_xyxy

MAX_CANDIDATES = 30_000


def non_max_suppression(
    pred: torch.Tensor,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
    classes: Sequence[int] | None = None,
    *,
    multi_label: bool = False,
    agnostic: bool = False,
    max_candidates: int = MAX_CANDIDATES,
) -> list[torch.Tensor]:
    """Per-image detections from decoded predictions.

    Args:
        pred: ``[B, 4 + nc, A]`` from ``decode`` (cx, cy, w, h input pixels, then class probs).
        conf: keep (anchor, class) scores strictly above this.
        iou: IoU above which a lower-scored box of the same class is suppressed.
        max_det: at most this many detections per image.
        classes: keep only these class ids (``None`` = all).
        multi_label: one candidate per (anchor, class) above ``conf``, not just the best class.
        agnostic: suppress across classes too.
        max_candidates: keep only the highest-scored candidates before NMS.

    Returns:
        ``B`` tensors ``[n, 6]``: (x1, y1, x2, y2, score, class) in input pixels, descending score.
    """
    if pred.dim() != 3:
        raise ValueError(f"pred must be [B, 4 + nc, A], got shape {tuple(pred.shape)}")
    num_classes = pred.shape[1] - 4
    wanted = None if classes is None else torch.as_tensor(list(classes), device=pred.device)
    results = []
    for image_pred in pred.transpose(1, 2):  # [A, 4 + nc]
        scores_all = image_pred[:, 4:]
        keep = scores_all.amax(1) > conf  # cheap pre-filter on the best class
        boxes = xywh_to_xyxy(image_pred[keep, :4])
        scores_all = scores_all[keep]
        if multi_label and num_classes > 1:
            anchor_idx, class_idx = (scores_all > conf).nonzero(as_tuple=True)
            boxes, scores = boxes[anchor_idx], scores_all[anchor_idx, class_idx]
        else:
            scores, class_idx = scores_all.max(1)
        if wanted is not None:
            in_filter = torch.isin(class_idx, wanted)
            boxes, scores, class_idx = boxes[in_filter], scores[in_filter], class_idx[in_filter]
        if scores.numel() > max_candidates:
            top = scores.topk(max_candidates).indices
            boxes, scores, class_idx = boxes[top], scores[top], class_idx[top]
        groups = torch.zeros_like(class_idx) if agnostic else class_idx
        kept = batched_nms(boxes.float(), scores.float(), groups, iou)[:max_det]
        results.append(
            torch.cat((boxes[kept], scores[kept, None], class_idx[kept, None].to(boxes.dtype)), 1)
        )
    return results


def scale_boxes(
    boxes: torch.Tensor,
    gain: float,
    pad: tuple[float, float],
    orig_shape: tuple[int, int],
) -> torch.Tensor:
    """Map xyxy boxes ``[n, 4]`` from letterboxed input pixels to original image pixels, clipped.

    Convention: ``input_px = orig_px * gain + pad`` with ``pad = (pad_x, pad_y)``;
    ``orig_shape = (height, width)`` of the original image. Returns a new tensor.
    """
    pad_x, pad_y = float(pad[0]), float(pad[1])
    offset = boxes.new_tensor([pad_x, pad_y, pad_x, pad_y])
    out = (boxes[:, :4] - offset) / float(gain)
    height, width = orig_shape
    return clip_boxes(out, float(width), float(height))
