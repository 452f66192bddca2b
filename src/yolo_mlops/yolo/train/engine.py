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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.profiler import record_function
from tqdm import tqdm

from yolo_mlops.yolo.train.ema import ModelEMA
from yolo_mlops.yolo.train.epoch_meter import EpochMeter, EpochStats
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
        skip_steps: batches of the next epoch trained before an interruption (a resume
            mid-epoch skips them; reset to 0 once that epoch runs).
        partial: the interrupted epoch's meter (``EpochMeter.partial``) when resuming mid-epoch.
    """

    last_opt_step: int = -1
    accumulate: int = 1
    skip_steps: int = 0
    partial: dict[str, Any] | None = None


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
        should_stop: polled after every batch; True ends the epoch there (``EpochStats.stopped``).
    """

    autocast_dtype: torch.dtype | None = None
    first_reduced_epoch: int = 0
    channels_last: bool = False
    imgsz: int = 640
    progress: bool = True
    callbacks: Sequence[BatchCallback] = ()
    should_stop: Callable[[], bool] | None = None

    def autocast_for(self, epoch: int) -> torch.dtype | None:
        """The autocast dtype of ``epoch`` (None = float32)."""
        return self.autocast_dtype if epoch >= self.first_reduced_epoch else None


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
    skip, meter = run.loop.skip_steps, EpochMeter.resumed(run.loop.partial)
    run.loop.skip_steps, run.loop.partial = 0, None
    bar = _progress_bar(loader, schedule, epoch, options.progress)
    tick = time.perf_counter()
    for step, batch in enumerate(_batches(bar, options.should_stop)):
        if step < skip:  # trained before the interruption this run resumes
            tick = time.perf_counter()
            continue
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
        if options.should_stop is not None and options.should_stop():
            break
    bar.close()
    stopped = meter.steps < schedule.batches_per_epoch and bool(
        options.should_stop and options.should_stop()
    )
    if meter.steps == 0 and not stopped:
        raise ValueError(f"the training loader yielded no batches in epoch {epoch}")
    stats = meter.stats([float(group["lr"]) for group in run.optimizer.param_groups])
    stats.stopped, stats.partial = stopped, meter.partial() if stopped else None
    return stats


def _batches(loader: Iterable, should_stop: Callable[[], bool] | None) -> Iterator[Any]:
    """The loader's batches; a loader failing once a stop was asked for ends the epoch instead
    (Ctrl-C in a terminal also reaches the loader's worker processes, which then exit)."""
    iterator = iter(loader)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except Exception:
            if should_stop is not None and should_stop():
                return
            raise
        yield batch


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
