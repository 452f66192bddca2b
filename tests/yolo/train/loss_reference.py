"""The detection loss written densely, term by term: the readable definition (design §3).

Every anchor and class is materialised (``[B, A, nc]``), which makes each step of the loss easy
to follow and slow on a CPU. Training uses :class:`~yolo_mlops.yolo.train.loss.DetectionLoss`,
which computes the same values and gradients without the dense tensors; the tests hold the two
equal (values 1e-5, gradients 1e-4).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from yolo_mlops.yolo.boxes import bbox_ciou
from yolo_mlops.yolo.model.anchors import bbox2dist, dist2bbox, make_anchors
from yolo_mlops.yolo.train.assigner import TaskAlignedAssigner
from yolo_mlops.yolo.train.loss_terms import dfl_loss, pad_targets

REG_MAX = 16


def dense_detection_loss(
    maps: Sequence[torch.Tensor],
    targets: torch.Tensor,
    num_classes: int,
    strides: Sequence[int] = (8, 16, 32),
    gains: tuple[float, float, float] = (7.5, 0.5, 1.5),
) -> torch.Tensor:
    """``[3]`` (box, cls, dfl) losses, gain-multiplied, with autograd through ``maps``.

    Args:
        maps: the three raw head maps ``[B, 4·16 + nc, H_i, W_i]``.
        targets: ``[N, 6]`` rows (batch_index, class_id, x1, y1, x2, y2) in input pixels.
        num_classes: nc.
        strides: the maps' strides.
        gains: box, cls and dfl gains.

    The trainer back-propagates ``sum × batch size``; this returns the three gained terms.
    """
    assigner = TaskAlignedAssigner(topk=10, num_classes=num_classes, alpha=0.5, beta=6.0)
    batch = maps[0].shape[0]
    flat = torch.cat([m.flatten(2) for m in maps], 2).permute(0, 2, 1)  # [B, A, 64 + nc]
    pred_dist, pred_logits = flat[..., : 4 * REG_MAX], flat[..., 4 * REG_MAX :]
    points, stride = make_anchors(list(maps), tuple(strides))  # [A, 2], [A, 1] grid units
    probs = pred_dist.reshape(batch, -1, 4, REG_MAX).softmax(-1)  # [B, A, 4, 16]
    bins = torch.arange(REG_MAX, dtype=probs.dtype, device=probs.device)
    pred_bboxes = dist2bbox(probs @ bins, points, False)  # [B, A, 4] xyxy, grid units
    labels, bboxes, mask_gt = pad_targets(targets, batch)
    assigned = assigner(
        pred_logits.detach().sigmoid(),
        pred_bboxes.detach() * stride,
        points * stride,
        labels,
        bboxes,
        mask_gt,
    )
    scores = assigned.scores  # [B, A, nc] alignment-weighted one-hot targets
    scores_sum = scores.sum().clamp(min=1)
    cls = F.binary_cross_entropy_with_logits(pred_logits, scores, reduction="sum") / scores_sum
    fg = assigned.fg_mask  # [B, A] positives
    weight = scores.sum(-1)[fg]
    target = assigned.bboxes / stride  # GT boxes in grid units
    box = ((1 - bbox_ciou(pred_bboxes[fg], target[fg])) * weight).sum() / scores_sum
    target_dist = bbox2dist(points, target, REG_MAX - 1.01)[fg]
    fg_logits = pred_dist[fg].reshape(-1, 4, REG_MAX)
    dfl = (dfl_loss(fg_logits, target_dist, REG_MAX) * weight).sum() / scores_sum
    return torch.stack((box * gains[0], cls * gains[1], dfl * gains[2]))
