"""Task-aligned label assignment (TAL) for the YOLO11 detection loss.

Each ground-truth box (GT) picks the anchor points that both lie inside it and predict it well:
the *alignment* of an anchor with a GT is ``score^alpha · overlap^beta``, where ``score`` is the
predicted probability of the GT's class at that anchor and ``overlap`` the CIoU (clamped at 0)
between the GT and the anchor's predicted box. Each GT keeps its ``topk`` best-aligned anchors
whose centre lies strictly inside it; an anchor wanted by several GTs goes to the one it overlaps
most. The classification target of a positive anchor is its alignment, rescaled per GT so that
the GT's best anchor gets the GT's best overlap.

Everything is vectorised over the batch, the (padded) GTs and the anchors: GT tensors are padded
to ``[B, M, ...]`` with a boolean ``mask_gt [B, M]`` saying which rows are real. Dense tensors are
``[B, M, A]`` at most; the class dimension is only touched by gathering each GT's own class, so
no ``[B, M, A, nc]`` tensor is ever built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from yolo_mlops.yolo.boxes import bbox_ciou

ScoreLookup = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Assignment:
    """Result of :class:`TaskAlignedAssigner` for ``B`` images and ``A`` anchors.

    Attributes:
        labels: ``[B, A]`` int64 class id of the assigned GT; ``num_classes`` for background.
        bboxes: ``[B, A, 4]`` xyxy in input pixels of the assigned GT; zeros for background.
        weights: ``[B, A]`` target score of the assigned class (the normalised alignment);
            0 for background. Equals ``scores.sum(-1)``.
        fg_mask: ``[B, A]`` bool, True for foreground (positive) anchors.
        gt_index: ``[B, A]`` int64 index ``m`` of the assigned GT row; 0 for background.
        num_classes: ``nc``.
    """

    labels: torch.Tensor
    bboxes: torch.Tensor
    weights: torch.Tensor
    fg_mask: torch.Tensor
    gt_index: torch.Tensor
    num_classes: int

    @property
    def scores(self) -> torch.Tensor:
        """``[B, A, nc]`` soft classification targets: one-hot(label) × weight (built on demand)."""
        batch, num_anchors = self.labels.shape
        dense = self.weights.new_zeros((batch, num_anchors, self.num_classes))
        index = self.labels.clamp(max=self.num_classes - 1)[..., None]
        return dense.scatter_(-1, index, self.weights[..., None])


def anchors_inside_boxes(
    anchor_points: torch.Tensor, gt_bboxes: torch.Tensor, eps: float = 1e-9
) -> torch.Tensor:
    """Which anchor centres lie strictly inside which GT box.

    Args:
        anchor_points: ``[A, 2]`` (x, y) in input pixels.
        gt_bboxes: ``[B, M, 4]`` xyxy in input pixels.
        eps: every margin (left, top, right, bottom) must exceed this.

    Returns:
        ``[B, M, A]`` bool.
    """
    x = anchor_points[:, 0].view(1, 1, -1)
    y = anchor_points[:, 1].view(1, 1, -1)
    x1, y1, x2, y2 = (gt_bboxes[..., i : i + 1] for i in range(4))  # each [B, M, 1]
    return (x - x1 > eps) & (y - y1 > eps) & (x2 - x > eps) & (y2 - y > eps)


def widen_small_boxes(boxes: torch.Tensor, min_side: float) -> torch.Tensor:
    """Grow each side of xyxy ``boxes [..., 4]`` shorter than ``min_side`` to ``min_side``, keeping
    the centre. Used only to choose candidate anchors: a box narrower than the anchor spacing may
    contain no anchor centre at all and would then never be trained."""
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    half = ((boxes[..., 2:] - boxes[..., :2]).clamp(min=min_side)) / 2
    return torch.cat((centre - half, centre + half), -1)


class TaskAlignedAssigner(nn.Module):
    """Assign GT boxes to anchors by task alignment (see module docstring).

    Args:
        num_classes: number of classes ``nc``.
        topk: anchors kept per GT.
        alpha: exponent of the class score in the alignment metric.
        beta: exponent of the CIoU overlap in the alignment metric.
        eps: numerical guard for the candidate margins and the normalisation.
        min_candidate_side: for the candidate test only, GT sides shorter than this (input
            pixels) are widened to it around the box centre, so that boxes smaller than the
            anchor spacing still get candidates (Ultralytics >= 8.4 uses 16 px, the second
            stride). 0 keeps the 8.3.0 rule (centre strictly inside the GT box).
    """

    def __init__(
        self,
        num_classes: int,
        topk: int = 10,
        alpha: float = 0.5,
        beta: float = 6.0,
        eps: float = 1e-9,
        *,
        min_candidate_side: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.topk = topk
        self.alpha = alpha
        self.beta = beta
        self.eps = eps
        self.min_candidate_side = min_candidate_side

    @torch.no_grad()
    def forward(  # noqa: PLR0917 (the six tensors are the assignment's natural inputs)
        self,
        pred_scores: torch.Tensor,
        pred_bboxes: torch.Tensor,
        anchor_points: torch.Tensor,
        gt_labels: torch.Tensor,
        gt_bboxes: torch.Tensor,
        mask_gt: torch.Tensor,
    ) -> Assignment:
        """Assign targets.

        Args:
            pred_scores: ``[B, A, nc]`` predicted class probabilities (after sigmoid).
            pred_bboxes: ``[B, A, 4]`` predicted boxes, xyxy input pixels.
            anchor_points: ``[A, 2]`` anchor centres in input pixels.
            gt_labels: ``[B, M]`` (or ``[B, M, 1]``) class ids of the padded GTs.
            gt_bboxes: ``[B, M, 4]`` xyxy input pixels of the padded GTs.
            mask_gt: ``[B, M]`` (or ``[B, M, 1]``) True for real GT rows.

        Returns:
            An :class:`Assignment`.
        """
        if (
            pred_scores.shape[:2] != pred_bboxes.shape[:2]
            or pred_scores.shape[2] != self.num_classes
        ):
            raise ValueError(
                f"pred_scores {tuple(pred_scores.shape)} does not match [B, A, nc] = "
                f"[{pred_bboxes.shape[0]}, {pred_bboxes.shape[1]}, {self.num_classes}]"
            )

        def lookup(image: torch.Tensor, anchor: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
            return pred_scores[image, anchor, cls]

        return self.assign(lookup, pred_bboxes, anchor_points, gt_labels, gt_bboxes, mask_gt)

    @torch.no_grad()
    def assign(  # noqa: PLR0917 (same inputs as forward)
        self,
        score_lookup: ScoreLookup,
        pred_bboxes: torch.Tensor,
        anchor_points: torch.Tensor,
        gt_labels: torch.Tensor,
        gt_bboxes: torch.Tensor,
        mask_gt: torch.Tensor,
    ) -> Assignment:
        """:meth:`forward` for callers that keep the class scores in another layout.

        ``score_lookup(image [n], anchor [n], class [n]) -> [n]`` returns the predicted
        probabilities at those positions; it is called once, for the candidate pairs only. The
        loss uses it to read logits straight from the head maps without building ``[B, A, nc]``.
        """
        batch, num_anchors = pred_bboxes.shape[:2]
        gt_labels = gt_labels.reshape(batch, -1).long()
        mask_gt = mask_gt.reshape(batch, -1).bool()
        if gt_labels.shape[1] == 0 or not bool(mask_gt.any()):
            return self._background(batch, num_anchors, pred_bboxes)
        candidates = self._candidates(anchor_points, gt_bboxes, mask_gt)
        overlaps, align_metric = self._alignment(
            candidates, score_lookup, pred_bboxes, gt_labels, gt_bboxes
        )
        mask_pos = self._positives(candidates, overlaps, align_metric)
        return self._targets(mask_pos, overlaps, align_metric, gt_labels, gt_bboxes, pred_bboxes)

    def _background(self, batch: int, num_anchors: int, like: torch.Tensor) -> Assignment:
        """Every anchor background (no real GT in the batch)."""
        shape, device = (batch, num_anchors), like.device
        return Assignment(
            labels=torch.full(shape, self.num_classes, dtype=torch.long, device=device),
            bboxes=torch.zeros((*shape, 4), dtype=like.dtype, device=device),
            weights=torch.zeros(shape, dtype=like.dtype, device=device),
            fg_mask=torch.zeros(shape, dtype=torch.bool, device=device),
            gt_index=torch.zeros(shape, dtype=torch.long, device=device),
            num_classes=self.num_classes,
        )

    def _candidates(
        self, anchor_points: torch.Tensor, gt_bboxes: torch.Tensor, mask_gt: torch.Tensor
    ) -> torch.Tensor:
        """``[B, M, A]`` bool: anchor centre strictly inside a real GT (small GTs widened)."""
        boxes = gt_bboxes
        if self.min_candidate_side > 0:
            boxes = widen_small_boxes(gt_bboxes, self.min_candidate_side)
        return anchors_inside_boxes(anchor_points, boxes, self.eps) & mask_gt[..., None]

    def _alignment(
        self,
        candidates: torch.Tensor,
        score_lookup: ScoreLookup,
        pred_bboxes: torch.Tensor,
        gt_labels: torch.Tensor,
        gt_bboxes: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense ``[B, M, A]`` CIoU overlaps and alignment metrics, zero outside the candidates."""
        b_idx, m_idx, a_idx = candidates.nonzero(as_tuple=True)
        score = score_lookup(b_idx, a_idx, gt_labels[b_idx, m_idx])
        overlap = bbox_ciou(gt_bboxes[b_idx, m_idx], pred_bboxes[b_idx, a_idx]).clamp_(min=0)
        metric = score.to(overlap.dtype).pow(self.alpha) * overlap.pow(self.beta)
        overlaps = torch.zeros(candidates.shape, dtype=overlap.dtype, device=overlap.device)
        align_metric = torch.zeros_like(overlaps)
        overlaps[b_idx, m_idx, a_idx] = overlap
        align_metric[b_idx, m_idx, a_idx] = metric
        return overlaps, align_metric

    def _positives(
        self, candidates: torch.Tensor, overlaps: torch.Tensor, align_metric: torch.Tensor
    ) -> torch.Tensor:
        """``[B, M, A]`` bool: each GT's top-k candidates, each anchor kept by one GT at most."""
        k = min(self.topk, candidates.shape[-1])
        topk_index = align_metric.topk(k, dim=-1, largest=True).indices  # [B, M, k]
        in_topk = torch.zeros_like(candidates).scatter_(-1, topk_index, True)
        mask_pos = in_topk & candidates
        # An anchor positive for several GTs keeps the GT with the highest overlap among those.
        multi = mask_pos.sum(1) > 1  # [B, A]
        if bool(multi.any()):
            # max(dim).indices: much faster than argmax over a middle dim on CPU.
            best_gt = overlaps.masked_fill(~mask_pos, -1.0).max(1).indices  # [B, A]
            is_best = torch.zeros_like(mask_pos).scatter_(1, best_gt[:, None, :], True)
            mask_pos = torch.where(multi[:, None, :], is_best & mask_pos, mask_pos)
        return mask_pos

    def _targets(  # noqa: PLR0917 (the positives and what they index)
        self,
        mask_pos: torch.Tensor,
        overlaps: torch.Tensor,
        align_metric: torch.Tensor,
        gt_labels: torch.Tensor,
        gt_bboxes: torch.Tensor,
        pred_bboxes: torch.Tensor,
    ) -> Assignment:
        """The assignment of each anchor from ``mask_pos`` (at most one GT per anchor)."""
        batch, num_gts = gt_labels.shape
        device = pred_bboxes.device
        fg_mask = mask_pos.any(1)  # [B, A]; sums over M below pick an anchor's one GT
        gt_range = torch.arange(num_gts, device=device).view(1, -1, 1)
        gt_index = (mask_pos * gt_range).sum(1)  # [B, A]; 0 for background
        # Normalise the alignment per GT: max over its positives -> its max overlap.
        align_metric = align_metric * mask_pos
        max_metric = align_metric.amax(-1, keepdim=True)  # [B, M, 1]
        max_overlap = (overlaps * mask_pos).amax(-1, keepdim=True)  # [B, M, 1]
        weights = (align_metric * (max_overlap / (max_metric + self.eps))).sum(1)  # [B, A]
        batch_index = torch.arange(batch, device=device)[:, None]
        labels = gt_labels[batch_index, gt_index]  # [B, A]
        labels = torch.where(fg_mask, labels, torch.full_like(labels, self.num_classes))
        bboxes = gt_bboxes[batch_index, gt_index] * fg_mask[..., None]  # [B, A, 4]
        return Assignment(
            labels, bboxes, weights.to(pred_bboxes.dtype), fg_mask, gt_index, self.num_classes
        )
