"""Post-processing of decoded predictions in numpy: NMS and the per-image result, without torch.

The same rules as :func:`yolo_mlops.yolo.model.postprocess.non_max_suppression` (design §6), so an
exported model served without torch keeps the detections of the PyTorch path:

* keep (anchor, class) scores strictly above ``conf`` (only the best class unless
  ``multi_label``), at most ``max_candidates`` of them by score;
* greedy NMS per class in descending score order, suppressing IoU strictly above ``iou``, as
  torchvision's ``batched_nms`` (float32 arithmetic, the same IoU formula);
* at most ``max_det`` detections per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from yolo_mlops.yolo.data.letterbox import unletterbox_boxes

MAX_CANDIDATES = 30_000


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


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """``[n, 4]`` (centre-x, centre-y, w, h) → (x1, y1, x2, y2), same units and dtype."""
    half = boxes[:, 2:] / 2
    return np.concatenate((boxes[:, :2] - half, boxes[:, :2] + half), 1)


def greedy_nms(
    boxes: np.ndarray, scores: np.ndarray, groups: np.ndarray, iou: float, max_det: int
) -> np.ndarray:
    """Indices kept by NMS within each group, in descending score order (at most ``max_det``).

    ``boxes [n, 4]`` xyxy float32, ``scores [n]``, ``groups [n]`` ints (class ids, or zeros for
    class-agnostic NMS). A box is dropped when its IoU with a kept box of its group is > ``iou``.
    """
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size and len(keep) < max_det:
        best, rest = order[0], order[1:]
        keep.append(best)
        top_left = np.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
        overlap = inter / (areas[best] + areas[rest] - inter)
        order = rest[~((overlap > iou) & (groups[rest] == groups[best]))]
    return np.asarray(keep, dtype=np.int64)


def non_max_suppression(
    pred: np.ndarray,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
    *,
    multi_label: bool = False,
    agnostic: bool = False,
    max_candidates: int = MAX_CANDIDATES,
) -> list[np.ndarray]:
    """Per-image detections from decoded predictions ``[B, 4 + nc, A]`` (numpy).

    Rows 0..3 are (cx, cy, w, h) in input pixels, the rest class probabilities. Returns ``B``
    float32 arrays ``[n, 6]``: (x1, y1, x2, y2, score, class) in input pixels, descending score.
    """
    if pred.ndim != 3:
        raise ValueError(f"pred must be [B, 4 + nc, A], got shape {pred.shape}")
    num_classes = pred.shape[1] - 4
    results = []
    for image_pred in pred.transpose(0, 2, 1):  # [A, 4 + nc]
        scores_all = image_pred[:, 4:]
        keep = scores_all.max(1) > conf  # cheap pre-filter on the best class
        boxes = xywh_to_xyxy(image_pred[keep, :4])
        scores_all = scores_all[keep]
        if multi_label and num_classes > 1:
            anchor_idx, class_idx = np.nonzero(scores_all > conf)
            boxes, scores = boxes[anchor_idx], scores_all[anchor_idx, class_idx]
        else:
            class_idx = scores_all.argmax(1)
            scores = scores_all[np.arange(len(class_idx)), class_idx]
        if scores.size > max_candidates:
            top = np.argsort(-scores, kind="stable")[:max_candidates]
            boxes, scores, class_idx = boxes[top], scores[top], class_idx[top]
        groups = np.zeros_like(class_idx) if agnostic else class_idx
        kept = greedy_nms(boxes, scores, groups, iou, max_det)
        rows = np.concatenate((boxes[kept], scores[kept, None], class_idx[kept, None]), 1)
        results.append(rows.astype(np.float32, copy=False))
    return results


def to_original(
    rows: np.ndarray, gain: float, pad: tuple[int, int], shape: tuple[int, int]
) -> ImageDetections:
    """NMS rows ``[n, 6]`` in letterboxed input pixels → detections in the original ``(h, w)``.

    ``input_px = orig_px * gain + pad`` (the letterbox convention); boxes are clipped to the image.
    """
    return ImageDetections(
        boxes=unletterbox_boxes(rows[:, :4], gain, pad, shape),
        scores=rows[:, 4].astype(np.float32),
        classes=rows[:, 5].astype(np.int64),
    )
