"""Worker for the DDP equivalence test: run under torchrun (2 processes) or alone.

Trains YOLO11n for one epoch (3 optimizer steps, global batch 4) on a tiny cache and saves the
final weights. The comparison with single-process training is exact up to float rounding
because (1) every rank sees its slice of the same global batches, (2) the loss is summed per
image (``DetectionLoss`` itself normalises by the batch's target-score sum, which is not
additive over shards) and (3) BatchNorm runs on frozen statistics (per-shard batch statistics
would differ from whole-batch ones; SyncBatchNorm exists only on CUDA).
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from yolo_mlops.yolo.data.image_cache import ImageCache
from yolo_mlops.yolo.data.loader import build_train_loader
from yolo_mlops.yolo.model.network import build_model
from yolo_mlops.yolo.train.distributed import cleanup, init_distributed, shard_loader, wrap_model
from yolo_mlops.yolo.train.ema import unwrap
from yolo_mlops.yolo.train.engine import (
    LoopOptions,
    LoopState,
    RunObjects,
    StepSchedule,
    train_one_epoch,
)
from yolo_mlops.yolo.train.loss import DetectionLoss
from yolo_mlops.yolo.train.optim import LRFactor, OptimizerChoice, build_optimizer, build_scheduler

GLOBAL_BATCH = 4


class FrozenBatchNorm(nn.Module):
    """Keeps every BatchNorm in eval mode (running statistics) while the rest trains."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model

    def train(self, mode: bool = True) -> FrozenBatchNorm:
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.inner(x)


def per_image_loss(loss: DetectionLoss):
    def criterion(maps, targets, batch_size):
        totals, parts = [], []
        for i in range(batch_size):
            rows = targets[targets[:, 0] == i].clone()
            rows[:, 0] = 0
            total, part = loss([m[i : i + 1] for m in maps], rows, 1)
            totals.append(total)
            parts.append(part)
        return torch.stack(totals).sum(), torch.stack(parts).mean(0)

    return criterion


def main(cache_path: str, out_path: str) -> None:
    torch.set_num_threads(1)
    info = init_distributed(torch.device("cpu"))
    cache = ImageCache.open(cache_path)
    torch.manual_seed(0)
    model = FrozenBatchNorm(build_model("n", num_classes=len(cache.names)))
    loader = build_train_loader(cache, batch_size=GLOBAL_BATCH, seed=0, epochs=1, close_mosaic=0)
    loader = shard_loader(loader, info)
    optimizer = build_optimizer(model, OptimizerChoice("SGD", 0.01, 0.9, 0.0), 5e-4)
    lr_factor = LRFactor(1, 1.0)
    scheduler = build_scheduler(optimizer, lr_factor)
    schedule = StepSchedule(
        epochs=1, batches_per_epoch=len(loader), batch_size=GLOBAL_BATCH,
        nbs=GLOBAL_BATCH, warmup_iters=0, warmup_bias_lr=0.0, warmup_momentum=0.9, momentum=0.9,
        lr_factor=lr_factor, clip_grad=10.0, world_size=info.world_size,
    )  # fmt: skip
    ddp = wrap_model(model, torch.device("cpu"), info, sync_bn=False)
    loader.set_epoch(0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    objects = RunObjects(model, None, optimizer, scheduler, scaler, LoopState(accumulate=1))
    criterion = per_image_loss(DetectionLoss(len(cache.names)))
    cpu, options = torch.device("cpu"), LoopOptions(progress=False)
    train_one_epoch(ddp, criterion, loader, objects, cpu, 0, schedule, options)
    if info.is_main:
        torch.save(unwrap(ddp).state_dict(), out_path)
    cleanup(info)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
