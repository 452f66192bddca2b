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
maps, from a dense NCHW float32 copy of each map whatever its dtype and memory format; the
gradients come back in the maps' dtype. Normalisation: every term is divided by
``max(Σ target scores, 1)``.

Implementation: the assignment and the loss values are computed without autograd, reading those
float32 maps in place; the box/DFL gradient of the few positive anchors comes from autograd on
their gathered logits, and :class:`_HeadLoss` writes the whole head-map gradient in backward
(BCE gradient ``sigmoid(x) − target`` plus those rows). Values and gradients equal the plain
dense formulation, the readable definition kept with the tests
(``tests/yolo/train/loss_reference.py``, which the tests hold equal to this), at a fraction of
its CPU time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from yolo_mlops.yolo.boxes import bbox_ciou
from yolo_mlops.yolo.model.anchors import bbox2dist, dist2bbox, make_anchors
from yolo_mlops.yolo.train.assigner import Assignment, TaskAlignedAssigner
from yolo_mlops.yolo.train.loss_terms import dfl_loss, pad_targets, softplus_sum


@dataclass
class _LevelGrad:
    """What the backward pass writes into one head map (indices local to the level)."""

    # Rows are all n positives; those of other levels carry zero target and zero gradient.
    cls_image: torch.Tensor  # [n] image index of each positive
    cls_channel: torch.Tensor  # [n] channel of its assigned class (4·reg_max + label)
    cls_anchor: torch.Tensor  # [n] anchor index within this level (y·W + x), clamped
    cls_target: torch.Tensor  # [n] its target score (0 if not in this level)
    box_grad: torch.Tensor | None  # [n, 4·reg_max] d(box part)/d(box logits), None if no grad
    dfl_grad: torch.Tensor | None  # [n, 4·reg_max] d(dfl part)/d(box logits)


@dataclass
class _GradPlan:
    """Loss values and everything :class:`_HeadLoss` needs to write the head-map gradients."""

    values: torch.Tensor  # [3] (box, cls, dfl), gain-multiplied
    cls_scale: float | torch.Tensor  # cls gain / target_scores_sum
    num_box_channels: int
    levels: list[_LevelGrad]


@dataclass
class _Heads:
    """The float32 head maps as ``[B, C, HW_i]`` views, and how the dense passes walk them."""

    views: list[torch.Tensor]
    sizes: list[int]  # HW_i of each level
    box_channels: int  # 4·reg_max box logits first, then the class logits
    chunk: int  # images per dense pass: 1 on CPU (cache-sized temporaries), B on a GPU

    @classmethod
    def of(cls, maps: Sequence[torch.Tensor], box_channels: int) -> _Heads:
        batch, channels = maps[0].shape[:2]
        views = [m.reshape(batch, channels, -1) for m in maps]
        chunk = 1 if maps[0].device.type == "cpu" else batch
        return cls(views, [v.shape[2] for v in views], box_channels, chunk)


@dataclass
class _Positives:
    """The ``n`` positive anchors of an assignment."""

    image: torch.Tensor  # [n] image index
    channel: torch.Tensor  # [n] channel of the assigned class (4·reg_max + label)
    weight: torch.Tensor  # [n] target score
    levels: list[tuple[torch.Tensor, torch.Tensor]]  # _level_positions of their anchors

    def level_grads(
        self, box_grad: torch.Tensor | None, dfl_grad: torch.Tensor | None
    ) -> list[_LevelGrad]:
        """Every level gets all n rows, masked to zero outside it (a zero scatter-add: no-op)."""
        out = []
        for in_level, local in self.levels:
            mask = in_level.to(self.weight.dtype)
            box, dfl = (None if g is None else g * mask[:, None] for g in (box_grad, dfl_grad))
            out.append(_LevelGrad(self.image, self.channel, local, self.weight * mask, box, dfl))
        return out


def _class_term(heads: _Heads, positives: _Positives) -> torch.Tensor:
    """The BCE sum ``Σ softplus(x) − Σ x·target`` over every anchor and class (float32 scalar);
    the targets are non-zero only at the positives."""
    box_channels, batch = heads.box_channels, heads.views[0].shape[0]
    softplus = sum(
        softplus_sum(v[start : start + heads.chunk, box_channels:])
        for v in heads.views
        for start in range(0, batch, heads.chunk)
    )
    logits = _gather_values(heads.views, positives.levels, positives.image, positives.channel)
    matched = logits.double() * positives.weight.double()
    return (softplus - matched.sum()).float()


class _HeadLoss(torch.autograd.Function):
    """Returns the precomputed ``[3]`` loss parts; backward writes ``d parts / d maps``.

    The class term is a BCE over every anchor and class whose gradient is
    ``(sigmoid(x) − target)·cls_gain / target_scores_sum``: it is written straight into one
    gradient buffer per head map, the sparse targets subtracted by index. The box and DFL terms
    depend only on the box logits of the positive anchors; their gradients (computed in forward
    with autograd on those few rows) are added at the same positions. This avoids concatenated
    ``[B, C, A]`` copies, zero-filled slice gradients and a dense ``[B, A, nc]`` target tensor,
    whose fresh large buffers dominate the CPU time of a straightforward implementation.
    """

    @staticmethod
    def forward(ctx, plan: _GradPlan, *maps: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.plan = plan
        ctx.save_for_backward(*maps)
        return plan.values.clone()

    @staticmethod
    def backward(ctx, grad_parts: torch.Tensor):  # type: ignore[override]
        plan: _GradPlan = ctx.plan
        maps = ctx.saved_tensors
        box_channels = plan.num_box_channels
        grads: list[torch.Tensor | None] = []
        for position, (feature, level) in enumerate(zip(maps, plan.levels, strict=True)):
            if not ctx.needs_input_grad[1 + position]:
                grads.append(None)
                continue
            batch, channels = feature.shape[:2]
            grad = torch.empty_like(feature, memory_format=torch.contiguous_format)
            flat_grad = grad.view(batch, channels, -1)  # [B, C, HW]
            flat_grad[:, :box_channels].zero_()
            class_grad = flat_grad[:, box_channels:]
            torch.sigmoid(feature.reshape(batch, channels, -1)[:, box_channels:], out=class_grad)
            index = (level.cls_image, level.cls_channel, level.cls_anchor)
            flat_grad.index_put_(index, -level.cls_target, accumulate=True)
            class_grad.mul_(grad_parts[1] * plan.cls_scale)
            if level.box_grad is not None and level.dfl_grad is not None:
                rows = grad_parts[0] * level.box_grad + grad_parts[2] * level.dfl_grad
                channel = torch.arange(box_channels, device=grad.device)[None, :]
                box_index = (level.cls_image[:, None], channel, level.cls_anchor[:, None])
                flat_grad.index_put_(box_index, rows, accumulate=True)
            grads.append(grad)
        return (None, *grads)


def global_normaliser(local_sum: torch.Tensor, synchronised: bool = True) -> torch.Tensor:
    """The loss normaliser ``max(Σ target scores, 1)`` of the whole global batch.

    In one process that is this batch's sum. Under DDP each rank sees a shard: the sums of all
    ranks are added (all-reduce) and the clamped total divided by the world size, so that each
    rank's loss is its share of the global batch's and DDP's gradient averaging (with the
    trainer's world-size factor) gives exactly the single-process gradient; the logged losses,
    averaged over ranks, equal the single-process ones.
    """
    if synchronised and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        total = local_sum.detach().clone()
        dist.all_reduce(total)
        return total.clamp(min=1.0) / dist.get_world_size()
    return local_sum.clamp(min=1.0)


class DetectionLoss(nn.Module):
    """YOLO11 (v8-style) detection loss; see the module docstring for the call convention.

    Args:
        num_classes: number of classes ``nc``.
        strides: stride of each head level, in input pixels.
        reg_max: bins per box side.
        box, cls, dfl: gains of the three parts.
        topk, alpha, beta, min_candidate_side: :class:`TaskAlignedAssigner` settings. The
            default keeps the 8.3.0 candidate rule; 16 widens GT sides below 16 px for candidate
            selection as Ultralytics >= 8.4 does (opt-in: design §10 gives the measured reason).
    """

    def __init__(  # noqa: PLR0917 - callers pass these positionally
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
        min_candidate_side: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.strides = tuple(int(s) for s in strides)
        self.reg_max = reg_max
        self.gains = (float(box), float(cls), float(dfl))
        self.assigner = TaskAlignedAssigner(
            num_classes, topk=topk, alpha=alpha, beta=beta, min_candidate_side=min_candidate_side
        )
        self._anchor_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        # under DDP, normalise by the global batch's target scores (the trainer turns it on)
        self.sync_normaliser = False

    def forward(
        self, raw_maps: Sequence[torch.Tensor], targets: torch.Tensor, batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Compute the loss; returns ``(total, parts)`` as described in the module docstring."""
        device_type = raw_maps[0].device.type
        with torch.autocast(device_type=device_type, enabled=False):
            # one dense NCHW float32 copy per map: the per-level [B, C, HW] views below are then
            # free, and the class-gradient sigmoid in backward runs on contiguous memory (on a
            # channels-last map both were strided copies or strided kernels; design §12)
            maps = [m.to(torch.float32, memory_format=torch.contiguous_format) for m in raw_maps]
            self._check(maps)
            need_grad = torch.is_grad_enabled() and any(m.requires_grad for m in maps)
            plan = self._plan(maps, targets, need_grad)
            parts = _HeadLoss.apply(plan, *maps)
        return parts.sum() * batch_size, parts.detach()

    def _check(self, maps: Sequence[torch.Tensor]) -> None:
        if len(maps) != len(self.strides):
            raise ValueError(f"expected {len(self.strides)} head maps, got {len(maps)}")
        expected = 4 * self.reg_max + self.num_classes
        for feature in maps:
            if feature.ndim != 4 or feature.shape[1] != expected:
                raise ValueError(
                    f"head map of shape {tuple(feature.shape)}: expected [B, {expected}, H, W] "
                    f"channels = {4 * self.reg_max} box + {self.num_classes} classes"
                )

    def _anchors(self, maps: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Anchor points ``[A, 2]`` (grid units) and strides ``[A, 1]``, cached by map shapes."""
        key = (tuple(tuple(m.shape[2:]) for m in maps), str(maps[0].device))
        if key not in self._anchor_cache:
            if len(self._anchor_cache) > 8:
                self._anchor_cache.clear()
            self._anchor_cache[key] = make_anchors(maps, self.strides, 0.5)
        return self._anchor_cache[key]

    @torch.no_grad()
    def _plan(self, maps: list[torch.Tensor], targets: torch.Tensor, need_grad: bool) -> _GradPlan:
        """Assign targets, compute the three parts and the gradient rows of the positives."""
        heads = _Heads.of(maps, 4 * self.reg_max)
        points, stride = self._anchors(maps)  # [A, 2], [A, 1] grid units
        assigned = self._assign(heads, points, stride, targets)
        b_idx, a_idx = assigned.fg_mask.nonzero(as_tuple=True)  # positives, [n] each
        positives = _Positives(
            image=b_idx,
            channel=assigned.labels[b_idx, a_idx] + heads.box_channels,
            weight=assigned.weights[b_idx, a_idx],
            levels=_level_positions(a_idx, heads.sizes),
        )
        target_scores_sum = global_normaliser(positives.weight.sum(), self.sync_normaliser)
        loss_cls = _class_term(heads, positives) / target_scores_sum

        # box and DFL: autograd over the positives' box logits only.
        fg_logits = _gather_box_logits(heads.views, positives.levels, b_idx, heads.box_channels)
        target_bboxes = assigned.bboxes[b_idx, a_idx] / stride[a_idx]  # [n, 4] grid units
        with torch.enable_grad():
            fg_logits.requires_grad_(need_grad)
            loss_box, loss_dfl = self._box_terms(
                fg_logits, points[a_idx], target_bboxes, positives.weight, target_scores_sum
            )
            part_box, part_dfl = loss_box * self.gains[0], loss_dfl * self.gains[2]
            box_grad = dfl_grad = None
            if need_grad and b_idx.numel() > 0:
                box_grad = torch.autograd.grad(part_box, fg_logits, retain_graph=True)[0]
                dfl_grad = torch.autograd.grad(part_dfl, fg_logits)[0]

        values = torch.stack((part_box.detach(), loss_cls * self.gains[1], part_dfl.detach()))
        levels = positives.level_grads(box_grad, dfl_grad)
        return _GradPlan(values, self.gains[1] / target_scores_sum, heads.box_channels, levels)

    def _assign(
        self, heads: _Heads, points: torch.Tensor, stride: torch.Tensor, targets: torch.Tensor
    ) -> Assignment:
        """Task-aligned assignment of ``targets`` to the anchors, from the decoded predictions."""
        box_channels, views, batch = heads.box_channels, heads.views, heads.views[0].shape[0]
        distances = torch.cat(
            [self._level_distances(v[:, :box_channels], heads.chunk) for v in views], 1
        )
        pred_bboxes = dist2bbox(distances, points, xywh=False) * stride  # [B, A, 4] pixels
        gt_labels, gt_bboxes, mask_gt = pad_targets(
            targets.to(views[0].device), batch, self.num_classes
        )

        def lookup(image: torch.Tensor, anchor: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
            positions = _level_positions(anchor, heads.sizes)
            return _gather_values(views, positions, image, cls + box_channels).sigmoid()

        return self.assigner.assign(
            lookup, pred_bboxes, points * stride, gt_labels, gt_bboxes, mask_gt
        )

    def _box_terms(
        self,
        fg_logits: torch.Tensor,
        fg_points: torch.Tensor,
        target_bboxes: torch.Tensor,
        weight: torch.Tensor,
        target_scores_sum: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CIoU and DFL terms (normalised, before gains) of the positives.

        Args:
            fg_logits: ``[n, 4·reg_max]`` box logits of the positive anchors.
            fg_points: ``[n, 2]`` their anchor points, grid units.
            target_bboxes: ``[n, 4]`` assigned GT boxes, xyxy grid units.
            weight: ``[n]`` target score of each positive.
            target_scores_sum: normaliser ``max(Σ target scores, 1)``.
        """
        logits = fg_logits.view(-1, 4, self.reg_max)
        bins = torch.arange(self.reg_max, dtype=logits.dtype, device=logits.device)
        fg_bboxes = dist2bbox((logits.softmax(-1) * bins).sum(-1), fg_points, xywh=False)
        ciou = bbox_ciou(fg_bboxes, target_bboxes)
        loss_box = ((1.0 - ciou) * weight).sum() / target_scores_sum
        target_dist = bbox2dist(fg_points, target_bboxes, self.reg_max - 1 - 0.01)  # [n, 4]
        loss_dfl = (dfl_loss(logits, target_dist, self.reg_max) * weight).sum() / target_scores_sum
        return loss_box, loss_dfl

    def _level_distances(self, box_logits: torch.Tensor, chunk: int) -> torch.Tensor:
        """``[B, 4·reg_max, HW]`` logits → ``[B, HW, 4]`` side distances (softmax expectation)."""
        batch, _, size = box_logits.shape
        bins = torch.arange(self.reg_max, dtype=box_logits.dtype, device=box_logits.device)
        out = torch.empty((batch, size, 4), dtype=box_logits.dtype, device=box_logits.device)
        for start in range(0, batch, chunk):
            logits = box_logits[start : start + chunk].reshape(-1, 4, self.reg_max, size)
            expected = (logits.softmax(2) * bins[:, None]).sum(2)  # [c, 4, HW]
            out[start : start + chunk] = expected.transpose(1, 2)
        return out


def _level_positions(
    anchor: torch.Tensor, sizes: Sequence[int]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Split global anchor indices ``[n]`` by level: per level ``(in_level [n] bool, local [n])``.

    ``local`` is the index within the level, clamped into range where ``in_level`` is False, so
    callers can gather/scatter over all ``n`` rows and mask, without a host synchronisation.
    """
    out = []
    start = 0
    for size in sizes:
        local = anchor - start
        out.append(((local >= 0) & (local < size), local.clamp(0, size - 1)))
        start += size
    return out


def _gather_values(
    views: Sequence[torch.Tensor],
    positions: Sequence[tuple[torch.Tensor, torch.Tensor]],
    image: torch.Tensor,
    channel: torch.Tensor,
) -> torch.Tensor:
    """Head-map values at ``(image, channel, anchor)`` triples ``[n]`` → ``[n]``.

    ``positions`` is :func:`_level_positions` of the anchors (global anchor index → level).
    """
    out = torch.zeros(image.shape, dtype=views[0].dtype, device=views[0].device)
    for view, (in_level, local) in zip(views, positions, strict=True):
        out = torch.where(in_level, view[image, channel, local], out)
    return out


def _gather_box_logits(
    views: Sequence[torch.Tensor],
    positions: Sequence[tuple[torch.Tensor, torch.Tensor]],
    image: torch.Tensor,
    num_box_channels: int,
) -> torch.Tensor:
    """The first ``num_box_channels`` channels at ``(image, anchor)`` pairs → ``[n, C]``."""
    out = torch.zeros(
        (image.numel(), num_box_channels), dtype=views[0].dtype, device=views[0].device
    )
    for view, (in_level, local) in zip(views, positions, strict=True):
        out = torch.where(in_level[:, None], view[image, :num_box_channels, local], out)
    return out
