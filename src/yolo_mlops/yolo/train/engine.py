"""One training epoch: forward, loss, backward, accumulation, warmup, clipping, EMA (design §4).

Each phase runs under a ``torch.profiler.record_function`` label (``train/forward``,
``train/loss``, ``train/backward``, ``train/optimizer``, ``train/ema``; a no-op unless a profiler
is recording), so ``benchmarks/train_throughput.py --profile`` splits a step by phase.

The loop is written in the ``torchvision/references/detection/engine.py`` style: a plain
function of the objects it acts on (the model, the loss, the loader, the run's
:class:`RunObjects`), the recipe's :class:`StepSchedule` and the :class:`LoopOptions` that say
how batches are fed and shown. A non-finite loss stops training with
:class:`NonFiniteLossError` naming the epoch and the step, before anything is written, so the
last good checkpoint stays intact.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.profiler import record_function
from tqdm import tqdm

from yolo_mlops.yolo.train.ema import ModelEMA
from yolo_mlops.yolo.train.optim import LRFactor, apply_warmup

LOGGER = logging.getLogger(__name__)

#: ``callback(epoch, step)`` called after every batch (tests use it to simulate a crash).
BatchCallback = Callable[[int, int], None]
#: ``criterion(raw_maps, targets, batch_size) -> (total, parts)``: the loss to back-propagate
#: and its (box, cls, dfl) parts, mean per image (``yolo.train.loss.DetectionLoss``).
Criterion = Callable[[list[torch.Tensor], torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]]


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
class RunObjects:
    """The live objects one training run updates; a checkpoint carries their state.

    ``model`` is the bare network (what the EMA follows and checkpoints store); ``ema`` is None
    off the main process. :func:`train_one_epoch` steps ``optimizer``, ``scaler``, ``ema`` and
    ``loop``; the trainer steps ``scheduler`` once per epoch.
    """

    model: nn.Module
    ema: ModelEMA | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    loop: LoopState


@dataclass(frozen=True)
class LoopOptions:
    """How the loop feeds and reports its batches (fixed for a run).

    Attributes:
        autocast_dtype: the forward pass's autocast dtype; None = float32.
        first_reduced_epoch: epochs before this (0-based) one run in float32 even when
            ``autocast_dtype`` is set (``precision.first_bf16_epoch``).
        channels_last: feed NHWC batches.
        imgsz: the input size the progress bar shows.
        progress: show a progress bar.
        callbacks: ``callback(epoch, step)`` after every batch.
    """

    autocast_dtype: torch.dtype | None = None
    first_reduced_epoch: int = 0
    channels_last: bool = False
    imgsz: int = 640
    progress: bool = True
    callbacks: Sequence[BatchCallback] = ()

    def autocast_for(self, epoch: int) -> torch.dtype | None:
        """The autocast dtype of ``epoch`` (None = float32)."""
        return self.autocast_dtype if epoch >= self.first_reduced_epoch else None


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


def train_one_epoch(  # noqa: PLR0917 - torchvision's order: what it acts on, where, when
    model: nn.Module,
    criterion: Criterion,
    loader: Iterable[dict[str, torch.Tensor]],
    run: RunObjects,
    device: torch.device,
    epoch: int,
    schedule: StepSchedule,
    options: LoopOptions | None = None,
) -> EpochStats:
    """Train for one epoch; steps ``run``'s optimizer, scaler and EMA and updates ``run.loop``.

    ``model`` is the module the forward runs: ``run.model`` or its DDP / compiled wrapper. A batch
    is ``{"images": uint8 [B,3,S,S], "targets": float [N,6] (batch index, class, x1, y1, x2, y2
    input px), ...}``. The optimizer steps when ``iteration - loop.last_opt_step >=
    loop.accumulate`` (the batches in between sum their gradients), so accumulation may span
    epochs exactly as in the reference.

    Raises:
        NonFiniteLossError: when the loss is NaN/inf (before its backward pass).
    """
    options = options or LoopOptions()
    dtype = options.autocast_for(epoch)  # None: float32
    input_dtype = dtype or torch.float32  # the batch is converted once, to what the forward uses
    model.train()
    meter = _EpochMeter()
    bar = _progress_bar(loader, schedule, epoch, options.progress)
    tick = time.perf_counter()
    for step, batch in enumerate(bar):
        start = time.perf_counter()
        meter.time_data += start - tick
        iteration = step + schedule.batches_per_epoch * epoch
        _warm_up(run.optimizer, run.loop, schedule, epoch, iteration)
        images = prepare_images(batch["images"], device, options.channels_last, input_dtype)
        targets = batch["targets"].to(device, non_blocking=True)
        total, parts = _forward_loss(model, criterion, images, targets, dtype)
        if not bool(torch.isfinite(total)) or not bool(torch.isfinite(parts).all()):
            run.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLossError(epoch, step, parts.tolist())
        _backward_and_step(model, run, schedule, total, iteration)
        meter.add(step, parts, images.shape[0], int(targets.shape[0]))
        if options.progress:
            bar.set_postfix(**meter.postfix(), size=options.imgsz)
        for callback in options.callbacks:
            callback(epoch, step)
        tick = time.perf_counter()
        meter.time_compute += tick - start
    bar.close()
    if meter.steps == 0:
        raise ValueError(f"the training loader yielded no batches in epoch {epoch}")
    return meter.stats([float(group["lr"]) for group in run.optimizer.param_groups])


def _progress_bar(loader: Iterable, schedule: StepSchedule, epoch: int, show: bool) -> tqdm:
    return tqdm(
        loader,
        total=schedule.batches_per_epoch,
        desc=f"epoch {epoch + 1}/{schedule.epochs}",
        disable=not show,
        leave=False,
        dynamic_ncols=True,
    )


def _warm_up(
    optimizer: torch.optim.Optimizer,
    loop: LoopState,
    schedule: StepSchedule,
    epoch: int,
    iteration: int,
) -> None:
    """During warmup: this iteration's learning rates, momentum and accumulation (design §4)."""
    if schedule.warmup_iters <= 0 or iteration > schedule.warmup_iters:
        return
    loop.accumulate = apply_warmup(
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


def _forward_loss(
    model: nn.Module,
    criterion: Criterion,
    images: torch.Tensor,
    targets: torch.Tensor,
    dtype: torch.dtype | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(total, parts)``: the loss to back-propagate and its (box, cls, dfl) parts on the CPU."""
    with record_function("train/forward"), autocast_context(images.device, dtype):
        raw_maps = model(images)
    with record_function("train/loss"):
        total, parts = criterion(raw_maps, targets, images.shape[0])
        return total, parts.detach().float().cpu()


def _backward_and_step(
    model: nn.Module, run: RunObjects, schedule: StepSchedule, total: torch.Tensor, iteration: int
) -> None:
    """Backward pass; an optimizer step once ``run.loop.accumulate`` batches are summed."""
    with record_function("train/backward"):
        run.scaler.scale(total * schedule.world_size).backward()  # DDP averages over processes
    if iteration - run.loop.last_opt_step >= run.loop.accumulate:
        optimizer_step(model, run.optimizer, run.scaler, run.ema, schedule.clip_grad)
        run.loop.last_opt_step = iteration


@dataclass
class _EpochMeter:
    """Running means and counters of one epoch (what :class:`EpochStats` reports)."""

    running: torch.Tensor = field(default_factory=lambda: torch.zeros(3))
    steps: int = 0
    images: int = 0
    instances: int = 0
    time_data: float = 0.0
    time_compute: float = 0.0

    def add(self, step: int, parts: torch.Tensor, images: int, instances: int) -> None:
        """Fold in batch ``step``'s mean (box, cls, dfl) loss per image ``parts`` [3]."""
        self.running = (self.running * step + parts) / (step + 1)
        self.steps = step + 1
        self.images += images
        self.instances = instances

    def postfix(self) -> dict[str, Any]:
        box, cls, dfl = self.running.tolist()
        return {
            "box": f"{box:.4g}",
            "cls": f"{cls:.4g}",
            "dfl": f"{dfl:.4g}",
            "inst": self.instances,
        }

    def stats(self, lrs: list[float]) -> EpochStats:
        return EpochStats(
            losses=self.running.tolist(),
            time_data=self.time_data,
            time_compute=self.time_compute,
            instances=self.instances,
            images=self.images,
            lrs=lrs,
        )
