"""YOLO11 detection loss: task-aligned assignment, BCE classification, CIoU box and DFL losses.

``total, parts = DetectionLoss(nc)(raw_maps, targets, batch_size)``:

* ``raw_maps``: the model's three head maps ``[B, 4·reg_max + nc, H_i, W_i]`` (strides 8, 16, 32);
  the first ``4·reg_max`` channels are the box-side distributions (l, t, r, b; ``reg_max`` bins
  each), the last ``nc`` the class logits.
* ``targets``: float ``[N, 6]`` rows (batch_index, class_id, x1, y1, x2, y2) in input pixels.
* ``total``: scalar with gradient, ``(box·7.5 + cls·0.5 + dfl·1.5) · batch_size``.
* ``parts``: detached ``[3]`` (box, cls, dfl), gain-multiplied but not multiplied by the batch
  size: the ``box_loss cls_loss dfl_loss`` columns of the training log.

The loss is always computed in float32 (autocast is switched off inside), on the device of the
maps. Normalisation: every term is divided by ``max(Σ target scores, 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from yolo_mlops.yolo.anchors import bbox2dist, dist2bbox, make_anchors
from yolo_mlops.yolo.assigner import TaskAlignedAssigner
from yolo_mlops.yolo.boxes import bbox_ciou


def pad_targets(
    targets: torch.Tensor, batch_size: int, num_classes: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Group flat targets per image and pad to the largest GT count ``M``.

    Args:
        targets: ``[N, 6]`` (batch_index, class_id, x1, y1, x2, y2), any row order.
        batch_size: ``B``; rows with a batch index outside ``[0, B)`` are an error.
        num_classes: when given, class ids outside ``[0, num_classes)`` are an error.

    Returns:
        ``labels [B, M]`` int64, ``bboxes [B, M, 4]`` float (xyxy, zeros in padding),
        ``mask_gt [B, M]`` bool (True for real rows).
    """
    device = targets.device
    if targets.numel() == 0:
        return (
            torch.zeros((batch_size, 0), dtype=torch.long, device=device),
            torch.zeros((batch_size, 0, 4), dtype=torch.float32, device=device),
            torch.zeros((batch_size, 0), dtype=torch.bool, device=device),
        )
    image = targets[:, 0].long()
    if bool((image < 0).any()) or bool((image >= batch_size).any()):
        raise ValueError(
            f"targets batch_index must lie in [0, {batch_size}); got "
            f"{int(image.min())}..{int(image.max())}"
        )
    if num_classes is not None:
        classes = targets[:, 1].long()
        if bool((classes < 0).any()) or bool((classes >= num_classes).any()):
            raise ValueError(
                f"targets class_id must lie in [0, {num_classes}); got "
                f"{int(classes.min())}..{int(classes.max())}"
            )
    order = torch.argsort(image, stable=True)
    image = image[order]
    counts = torch.bincount(image, minlength=batch_size)  # [B]
    starts = counts.cumsum(0) - counts
    slot = torch.arange(image.numel(), device=device) - starts[image]  # position within its image
    num_gts = int(counts.max())

    labels = torch.zeros((batch_size, num_gts), dtype=torch.long, device=device)
    bboxes = torch.zeros((batch_size, num_gts, 4), dtype=torch.float32, device=device)
    mask_gt = torch.zeros((batch_size, num_gts), dtype=torch.bool, device=device)
    rows = targets[order].float()
    labels[image, slot] = rows[:, 1].long()
    bboxes[image, slot] = rows[:, 2:6]
    mask_gt[image, slot] = True
    return labels, bboxes, mask_gt


def dfl_loss(pred_dist: torch.Tensor, target_dist: torch.Tensor, reg_max: int = 16) -> torch.Tensor:
    """Distribution focal loss per box, averaged over its four sides.

    Args:
        pred_dist: ``[n, 4, reg_max]`` logits of the bins for sides (l, t, r, b).
        target_dist: ``[n, 4]`` target distances in grid units, within ``[0, reg_max - 1)``.
        reg_max: number of bins.

    Returns:
        ``[n]``: for each side, cross-entropy against the two bins around the target, weighted by
        linear interpolation, then the mean over the sides.
    """
    left = target_dist.long()  # floor (targets are >= 0)
    right = left + 1
    weight_left = right.to(target_dist.dtype) - target_dist
    weight_right = 1 - weight_left
    logits = pred_dist.reshape(-1, reg_max)
    loss = (
        F.cross_entropy(logits, left.reshape(-1), reduction="none").view(left.shape) * weight_left
    )
    loss = loss + (
        F.cross_entropy(logits, right.reshape(-1), reduction="none").view(left.shape) * weight_right
    )
    return loss.mean(-1)


def softplus_sum(logits: torch.Tensor) -> torch.Tensor:
    """``Σ log(1 + exp(x))`` over all elements, as a float64 scalar, without autograd.

    ``log`` is the expensive part of a dense BCE on CPU (tens of ms for ``16 × 2100 × 80``
    elements), so the terms are multiplied in float64 in groups of 32 and only the products are
    logged: ``Σ log(1 + eˣ) = Σ_groups log Π (1 + eˣ)``. Logits above 15 are split as
    ``log(1 + e¹⁵) + (x − 15)``, which keeps every factor below e¹⁵ (a product of 32 stays far
    from float64 overflow) at an error below 3.1e-7 per element.
    """
    clip = 15.0
    logits = logits.detach()
    factors = logits.clamp(max=clip).exp_().reshape(-1).double().add_(1.0)
    whole = factors.numel() // 32 * 32
    total = factors[:whole].view(-1, 32).prod(-1).log_().sum() + factors[whole:].log().sum()
    if logits.numel() and logits.max() > clip:  # rare: only saturated logits need the excess
        total = total + (logits - clip).clamp_(min=0).sum().double()
    return total


class _SparseTargetBCE(torch.autograd.Function):
    """Summed BCE-with-logits against targets that are zero except at ``n`` given elements.

    ``forward(logits, target [n], *index)`` with ``index`` one ``[n]`` int64 tensor per dim of
    ``logits`` returns ``Σ softplus(x) − Σ x[index]·target``, which equals
    ``binary_cross_entropy_with_logits(x, dense_target, reduction="sum")``; the gradient is
    ``sigmoid(x) − dense_target``. The dense target is never built.
    """

    @staticmethod
    def forward(ctx, logits, target, *index):  # type: ignore[override]
        ctx.save_for_backward(logits, target, *index)
        value = softplus_sum(logits) - (logits[index].double() * target.double()).sum()
        return value.to(logits.dtype)

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        logits, target, *index = ctx.saved_tensors
        grad = logits.sigmoid()
        grad.index_put_(tuple(index), -target.to(grad.dtype), accumulate=True)
        return (grad.mul_(grad_output), None, *([None] * len(index)))


def sparse_target_bce(
    logits: torch.Tensor, index: tuple[torch.Tensor, ...], target: torch.Tensor
) -> torch.Tensor:
    """Summed ``BCEWithLogits(logits, dense)``, ``dense`` = 0 except ``dense[index] = target``.

    Args:
        logits: any shape, may be a strided view (e.g. the class channels of the head output).
        index: one ``[n]`` int64 tensor per dimension of ``logits``; no element twice.
        target: ``[n]`` target values at those elements.

    Returns:
        Scalar in ``logits.dtype``, differentiable with respect to ``logits``.
    """
    return _SparseTargetBCE.apply(logits, target, *index)


class DetectionLoss(nn.Module):
    """YOLO11 (v8-style) detection loss; see the module docstring for the call convention.

    Args:
        num_classes: number of classes ``nc``.
        strides: stride of each head level, in input pixels.
        reg_max: bins per box side.
        box, cls, dfl: gains of the three parts.
        topk, alpha, beta: :class:`TaskAlignedAssigner` settings.
    """

    def __init__(  # noqa: PLR0917 (positional order fixed by CONTRACTS.md)
        self,
        num_classes: int,
        strides: Sequence[int] = (8, 16, 32),
        reg_max: int = 16,
        box: float = 7.5,
        cls: float = 0.5,
        dfl: float = 1.5,
        topk: int = 10,
        alpha: float = 0.5,
        beta: float = 6.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.strides = tuple(int(s) for s in strides)
        self.reg_max = reg_max
        self.gains = (float(box), float(cls), float(dfl))
        self.assigner = TaskAlignedAssigner(num_classes, topk=topk, alpha=alpha, beta=beta)
        self._anchor_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def _anchors(self, maps: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Anchor points ``[A, 2]`` (grid units) and strides ``[A, 1]``, cached by map shapes."""
        key = (tuple(tuple(m.shape[2:]) for m in maps), str(maps[0].device))
        if key not in self._anchor_cache:
            if len(self._anchor_cache) > 8:
                self._anchor_cache.clear()
            self._anchor_cache[key] = make_anchors(maps, self.strides, 0.5)
        return self._anchor_cache[key]

    def forward(
        self, raw_maps: Sequence[torch.Tensor], targets: torch.Tensor, batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute the loss; returns ``(total, parts)`` as described in the module docstring."""
        device_type = raw_maps[0].device.type
        with torch.autocast(device_type=device_type, enabled=False):
            return self._loss([m.float() for m in raw_maps], targets, batch_size)

    def _loss(
        self, maps: list[torch.Tensor], targets: torch.Tensor, batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if len(maps) != len(self.strides):
            raise ValueError(f"expected {len(self.strides)} head maps, got {len(maps)}")
        batch, channels = maps[0].shape[:2]
        num_box_channels = 4 * self.reg_max
        if channels != num_box_channels + self.num_classes:
            raise ValueError(
                f"head maps have {channels} channels; expected {num_box_channels} + "
                f"{self.num_classes} classes"
            )
        flat = torch.cat([m.reshape(batch, channels, -1) for m in maps], 2)  # [B, C, A]
        box_logits = flat[:, :num_box_channels]  # [B, 4·reg_max, A]
        class_logits = flat[:, num_box_channels:]  # [B, nc, A] (a view, never permuted)

        points, stride = self._anchors(maps)  # [A, 2], [A, 1] grid units
        with torch.no_grad():
            # Every anchor's box for the assigner; gradients flow only through positives below.
            distances = self._expected_distances(box_logits, dim=1).transpose(1, 2)  # [B, A, 4]
            pred_bboxes = dist2bbox(distances, points, xywh=False) * stride  # pixels

        gt_labels, gt_bboxes, mask_gt = pad_targets(
            targets.to(flat.device), batch, self.num_classes
        )
        assigned = self.assigner(
            class_logits,
            pred_bboxes,
            points * stride,
            gt_labels,
            gt_bboxes,
            mask_gt,
            class_dim=1,
            scores_are_logits=True,
        )
        fg = assigned.fg_mask
        b_idx, a_idx = fg.nonzero(as_tuple=True)  # positives, [n] each
        weight = assigned.weights[b_idx, a_idx]  # [n] target score of each positive
        target_scores_sum = weight.sum().clamp(min=1.0)

        # BCE over every anchor and class; the targets are non-zero only at (b, label, a).
        labels = assigned.labels[b_idx, a_idx]
        loss_cls = sparse_target_bce(class_logits, (b_idx, labels, a_idx), weight)
        loss_cls = loss_cls / target_scores_sum

        if b_idx.numel() > 0:
            fg_logits = box_logits[b_idx, :, a_idx].reshape(-1, 4, self.reg_max)  # [n, 4, 16]
            fg_points = points[a_idx]
            target_bboxes = assigned.bboxes[b_idx, a_idx] / stride[a_idx]  # grid units
            fg_bboxes = dist2bbox(self._expected_distances(fg_logits, dim=2), fg_points, False)
            ciou = bbox_ciou(fg_bboxes, target_bboxes)
            loss_box = ((1.0 - ciou) * weight).sum() / target_scores_sum

            target_dist = bbox2dist(fg_points, target_bboxes, self.reg_max - 1 - 0.01)  # [n, 4]
            loss_dfl = (dfl_loss(fg_logits, target_dist, self.reg_max) * weight).sum()
            loss_dfl = loss_dfl / target_scores_sum
        else:
            # Keep the box branch in the graph (zero gradient) so DDP sees every parameter used.
            loss_box = box_logits.new_zeros(()) + box_logits.sum() * 0.0
            loss_dfl = loss_box.clone()

        parts = torch.stack(
            (loss_box * self.gains[0], loss_cls * self.gains[1], loss_dfl * self.gains[2])
        )
        return parts.sum() * batch_size, parts.detach()

    def _expected_distances(self, logits: torch.Tensor, dim: int) -> torch.Tensor:
        """Side distances (grid units) as the softmax expectation over the ``reg_max`` bins.

        ``logits`` has ``4·reg_max`` entries along ``dim`` (4 sides × bins); returns the same shape
        with 4 there. Works on ``[B, 64, A]`` (dim 1) and ``[n, 4, 16]`` (dim 2, already split).
        """
        shape = list(logits.shape)
        if shape[dim] == 4 * self.reg_max:
            shape[dim : dim + 1] = [4, self.reg_max]
            logits = logits.reshape(shape)
            dim += 1
        probs = logits.softmax(dim)
        bins_shape = [1] * probs.ndim
        bins_shape[dim] = self.reg_max
        bins = torch.arange(self.reg_max, dtype=probs.dtype, device=probs.device).view(bins_shape)
        return (probs * bins).sum(dim)
