"""The pieces both detection losses share: target padding, the DFL term, an exact softplus sum.

Used by the fast :class:`~yolo_mlops.yolo.train.loss.DetectionLoss` and by the dense
reference loss in ``tests/yolo/train/loss_reference.py`` (design §3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
