"""The objects a run optimizes with, built as the recipe says (design §4): the optimizer with
three parameter groups, the per-epoch LR schedule, the gradient scaler, the EMA, the loop state
and the :class:`~yolo_mlops.yolo.train.engine.StepSchedule` the epoch loop follows."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from yolo_mlops.yolo.train.config import TrainConfig
from yolo_mlops.yolo.train.distributed import DistInfo
from yolo_mlops.yolo.train.ema import ModelEMA
from yolo_mlops.yolo.train.engine import LoopState, RunObjects, StepSchedule
from yolo_mlops.yolo.train.optim import (
    LRFactor,
    accumulate_steps,
    build_optimizer,
    build_scheduler,
    resolve_optimizer,
    warmup_iterations,
)


@dataclass(frozen=True)
class RunSizes:
    """The data's sizes the recipe depends on.

    Attributes:
        num_classes: classes of the dataset.
        num_images: training images (``optimizer: auto`` and the iteration count).
        batches_per_epoch: len(train loader) on this process.
    """

    num_classes: int
    num_images: int
    batches_per_epoch: int


def build_optimization(
    model: nn.Module, cfg: TrainConfig, device: torch.device, sizes: RunSizes, dist: DistInfo
) -> tuple[RunObjects, StepSchedule]:
    """Optimizer (three parameter groups), per-epoch LR schedule, scaler, EMA, step plan."""
    choice = resolve_optimizer(
        cfg.optimizer, lr0=cfg.lr0, momentum=cfg.momentum, warmup_bias_lr=cfg.warmup_bias_lr,
        num_classes=sizes.num_classes, num_images=sizes.num_images,
        batch_size=cfg.batch, epochs=cfg.epochs, nbs=cfg.nbs,
    )  # fmt: skip
    accumulate = accumulate_steps(cfg.nbs, cfg.batch)
    optimizer = build_optimizer(model, choice, cfg.weight_decay * cfg.batch * accumulate / cfg.nbs)
    lr_factor = LRFactor(cfg.epochs, cfg.lrf, cfg.cos_lr)
    scheduler = build_scheduler(optimizer, lr_factor)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and cfg.amp)
    ema = ModelEMA(model) if dist.is_main else None
    loop = LoopState(accumulate=accumulate)
    batches = sizes.batches_per_epoch
    warmup = warmup_iterations(cfg.warmup_epochs, batches, cfg.warmup_min_iters)
    schedule = StepSchedule(
        epochs=cfg.epochs, batches_per_epoch=batches, batch_size=cfg.batch,
        nbs=cfg.nbs, warmup_iters=warmup, warmup_bias_lr=choice.warmup_bias_lr,
        warmup_momentum=cfg.warmup_momentum, momentum=cfg.momentum, lr_factor=lr_factor,
        clip_grad=cfg.clip_grad, world_size=dist.world_size,
    )  # fmt: skip
    return RunObjects(model, ema, optimizer, scheduler, scaler, loop), schedule


def optimizer_record(optimizer: torch.optim.Optimizer) -> dict[str, str | float]:
    """What trained the model, e.g. ``{"name": "AdamW", "lr0": 0.000714}``: ``optimizer: auto``
    resolved (the model card reads it; ``best.pt`` carries no optimizer state)."""
    group = optimizer.param_groups[0]
    return {"name": type(optimizer).__name__, "lr0": float(group.get("initial_lr", group["lr"]))}
