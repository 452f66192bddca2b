"""One training epoch: forward, loss, backward, accumulation, warmup, clipping, EMA (design §4).

Each phase runs under a ``torch.profiler.record_function`` label (``train/forward``,
``train/loss``, ``train/backward``, ``train/optimizer``, ``train/ema``; a no-op unless a profiler
is recording), so ``benchmarks/train_throughput.py --profile`` splits a step by phase.

The loop is written in the ``torchvision/references/detection/engine.py`` style: a plain
function of the model, the loss, the loader and the optimizer state. A non-finite loss stops
training with :class:`NonFiniteLossError` naming the epoch and the step, before anything is
written, so the last good checkpoint stays intact.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.profiler import record_function
from tqdm import tqdm

from yolo_mlops.yolo.train.ema import ModelEMA
from yolo_mlops.yolo.train.optim import LRFactor, apply_warmup

LOGGER = logging.getLogger(__name__)

#: ``callback(epoch, step)`` called after every batch (tests use it to simulate a crash).
BatchCallback = Callable[[int, int], None]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message names the epoch and the step."""

    def __init__(self, epoch: int, step: int, parts: Sequence[float]) -> None:
        self.epoch = epoch
        self.step = step
        box, cls, dfl = (float(p) for p in parts)
        super().__init__(
            f"non-finite training loss at epoch {epoch + 1} (0-based {epoch}), step {step} "
            f"(box={box}, cls={cls}, dfl={dfl}); training stopped and the last good checkpoint "
            "was kept. Lower training.lr0, check the labels, or disable training.amp/bf16."
        )


@dataclass
class StepSchedule:
    """What the loop needs to know about the recipe (fixed for a run).

    Attributes:
        epochs: total epochs (for the LR factor).
        batches_per_epoch: len(loader).
        batch_size: global batch size (all processes together; sets the warmup accumulation).
        nbs: nominal batch size reached by accumulation.
        warmup_iters: warmup length in iterations (0 = none).
        warmup_bias_lr / warmup_momentum / momentum: warmup end points (design §4).
        lr_factor: per-epoch lr factor ``lf(epoch)``.
        clip_grad: max total gradient norm (0 disables clipping).
        world_size: number of DDP processes (loss is multiplied by it because DDP averages).
    """

    epochs: int
    batches_per_epoch: int
    batch_size: int
    nbs: int
    warmup_iters: int
    warmup_bias_lr: float
    warmup_momentum: float
    momentum: float
    lr_factor: LRFactor
    clip_grad: float = 10.0
    world_size: int = 1


@dataclass
class LoopState:
    """State carried across epochs (saved in checkpoints for an exact resume).

    Attributes:
        last_opt_step: global iteration of the last optimizer step (-1 before the first).
        accumulate: batches per optimizer step currently in force.
    """

    last_opt_step: int = -1
    accumulate: int = 1


@dataclass
class EpochStats:
    """What one epoch measured.

    Attributes:
        losses: mean (box, cls, dfl) loss per image over the epoch.
        time_data: seconds spent waiting for batches.
        time_compute: seconds spent in forward/backward/step.
        instances: boxes in the last batch (what the progress bar shows).
        images: images seen by this process.
        lrs: learning rate of each parameter group at the end of the epoch.
    """

    losses: list[float]
    time_data: float
    time_compute: float
    instances: int
    images: int
    lrs: list[float] = field(default_factory=list)


def autocast_context(
    device: torch.device, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``'s type, or a no-op for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def prepare_images(
    images: torch.Tensor,
    device: torch.device,
    channels_last: bool,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """uint8 ``[B,3,H,W]`` -> ``dtype`` ``[B,3,H,W]`` in [0, 1] on ``device``.

    Under autocast pass its dtype: the first convolution would cast a float32 batch to it anyway.
    Every uint8 value is exact in bf16 and fp16, and their division by 255 is computed in float32
    and rounded once, so the result equals ``round(x / 255 in float32)`` bit for bit (design §12);
    converting here saves the float32 batch and the cast.
    """
    images = images.to(device, non_blocking=True)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)  # transpose the bytes
    return images.to(dtype).div_(255.0)


def optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    ema: ModelEMA | None,
    clip_grad: float,
) -> None:
    """Unscale, clip the total gradient norm, step, zero the gradients, update the EMA."""
    with record_function("train/optimizer"):
        scaler.unscale_(optimizer)
        if clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=clip_grad)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
    if ema is not None:
        with record_function("train/ema"):
            ema.update(model)


def train_one_epoch(
    model: nn.Module,
    criterion: Callable[[list[torch.Tensor], torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]],
    loader: Iterable[dict[str, torch.Tensor]],
    *,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    ema: ModelEMA | None,
    epoch: int,
    schedule: StepSchedule,
    state: LoopState,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    imgsz: int = 640,
    progress: bool = True,
    callbacks: Sequence[BatchCallback] = (),
) -> EpochStats:
    """Train ``model`` for one epoch over ``loader``; mutates ``state``.

    Each batch is ``{"images": uint8 [B,3,S,S], "targets": float [N,6] (batch index, class,
    x1, y1, x2, y2 input px), ...}``. An optimizer step happens when
    ``iteration - state.last_opt_step >= state.accumulate`` (gradients of the batches in between
    are summed), so accumulation may span epoch boundaries exactly as in the reference.

    Raises:
        NonFiniteLossError: when the loss is NaN/inf (before its backward pass).
    """
    model.train()
    running = torch.zeros(3)
    seen = instances = 0
    time_data = time_compute = 0.0
    batches = schedule.batches_per_epoch
    bar = tqdm(
        loader,
        total=batches,
        desc=f"epoch {epoch + 1}/{schedule.epochs}",
        disable=not progress,
        leave=False,
        dynamic_ncols=True,
    )
    tick = time.perf_counter()
    step = -1
    for step, batch in enumerate(bar):
        start = time.perf_counter()
        time_data += start - tick
        iteration = step + batches * epoch
        if schedule.warmup_iters > 0 and iteration <= schedule.warmup_iters:
            state.accumulate = apply_warmup(
                optimizer,
                iteration=iteration,
                warmup_iters=schedule.warmup_iters,
                epoch_factor=schedule.lr_factor(epoch),
                warmup_bias_lr=schedule.warmup_bias_lr,
                warmup_momentum=schedule.warmup_momentum,
                momentum=schedule.momentum,
                nbs=schedule.nbs,
                batch_size=schedule.batch_size,
            )
        images = prepare_images(
            batch["images"], device, channels_last, autocast_dtype or torch.float32
        )
        targets = batch["targets"].to(device, non_blocking=True)
        batch_size = images.shape[0]
        with record_function("train/forward"), autocast_context(device, autocast_dtype):
            raw_maps = model(images)
        with record_function("train/loss"):
            total, parts = criterion(raw_maps, targets, batch_size)
            parts = parts.detach().float().cpu()
        if not bool(torch.isfinite(total)) or not bool(torch.isfinite(parts).all()):
            optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLossError(epoch, step, parts.tolist())
        with record_function("train/backward"):
            scaler.scale(total * schedule.world_size).backward()
        if iteration - state.last_opt_step >= state.accumulate:
            optimizer_step(model, optimizer, scaler, ema, schedule.clip_grad)
            state.last_opt_step = iteration
        running = (running * step + parts) / (step + 1)
        seen += batch_size
        instances = int(targets.shape[0])
        if progress:
            box, cls, dfl = running.tolist()
            bar.set_postfix(
                box=f"{box:.4g}", cls=f"{cls:.4g}", dfl=f"{dfl:.4g}", inst=instances, size=imgsz
            )
        for callback in callbacks:
            callback(epoch, step)
        tick = time.perf_counter()
        time_compute += tick - start
    bar.close()
    if step < 0:
        raise ValueError(f"the training loader yielded no batches in epoch {epoch}")
    return EpochStats(
        losses=running.tolist(),
        time_data=time_data,
        time_compute=time_compute,
        instances=instances,
        images=seen,
        lrs=[float(g["lr"]) for g in optimizer.param_groups],
    )
