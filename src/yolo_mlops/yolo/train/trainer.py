"""The YOLO11 trainer: the recipe of design §4 around :func:`engine.train_one_epoch`.

``Trainer(config, cache).fit()`` builds (or loads) the model, the optimizer with three parameter
groups, the per-epoch LR schedule and the EMA; trains; evaluates the EMA model on the validation
split after every epoch; writes ``last.pt`` and ``best.pt`` (by fitness) atomically in our
checkpoint format; stops early after ``patience`` epochs without improvement. ``last.pt``
carries everything needed to continue exactly (see :mod:`yolo_mlops.yolo.train.state`).
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from yolo_mlops.yolo.data.augment import AugmentConfig
from yolo_mlops.yolo.data.loader import build_eval_loader, build_train_loader
from yolo_mlops.yolo.device import select_device
from yolo_mlops.yolo.eval.evaluate import evaluate
from yolo_mlops.yolo.io.checkpoint import atomic_copy
from yolo_mlops.yolo.io.weights import load_pretrained, transfer_weights
from yolo_mlops.yolo.model.network import build_model
from yolo_mlops.yolo.train import run_guard
from yolo_mlops.yolo.train import state as train_state
from yolo_mlops.yolo.train.compile import maybe_compile
from yolo_mlops.yolo.train.config import TrainConfig, TrainResult
from yolo_mlops.yolo.train.cpu_memory import retain_freed_memory
from yolo_mlops.yolo.train.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    broadcast_object,
    shard_loader,
    wrap_model,
)
from yolo_mlops.yolo.train.ema import ModelEMA
from yolo_mlops.yolo.train.engine import (
    BatchCallback,
    Criterion,
    EpochStats,
    LoopOptions,
    RunObjects,
    StepSchedule,
    train_one_epoch,
)
from yolo_mlops.yolo.train.interrupt import StopRequest, TrainingInterrupted
from yolo_mlops.yolo.train.loader_workers import loader_workers
from yolo_mlops.yolo.train.loss import DetectionLoss
from yolo_mlops.yolo.train.optim import accumulate_steps
from yolo_mlops.yolo.train.optimization import RunSizes, build_optimization, optimizer_record
from yolo_mlops.yolo.train.precision import autocast_dtype, describe, first_bf16_epoch

LOGGER = logging.getLogger(__name__)

__all__ = [
    "EpochCallback",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "select_device",
    "transfer_weights",
]

#: ``callback(epoch, row)`` after every epoch; ``epoch`` = completed epochs (1-based).
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class _Run:
    """What :meth:`Trainer._setup` builds and the epoch steps share."""

    device: torch.device
    imgsz: int
    names: list[str]
    objects: RunObjects  # model, EMA, optimizer, scheduler, scaler, loop state
    progress: train_state.Progress
    ddp_model: nn.Module  # the module the forward runs: the model, wrapped for DDP / compiled
    criterion: Criterion
    loader: Any
    val_loader: Any
    schedule: StepSchedule
    options: LoopOptions


class Trainer:
    """Train a YOLO11 detector on an ``ImageCache`` (see the module docstring).

    Args:
        config: the parameter block.
        cache: an opened ``ImageCache`` (image size, names, splits).
        callbacks: ``on_epoch_end(epoch, row)`` functions (main process only).
        batch_callbacks: ``(epoch, step)`` functions after every batch.
        dist_info: DDP process info (default: single process).
        criterion: loss override (tests); default ``DetectionLoss(nc)``.
        augment: training augmentation (default ``AugmentConfig()``, design §4).
        checkpoint_meta: extra plain entries for the checkpoints' ``config`` (the tracking run
            that trains them, the ``base_weights`` record of the initial weights).
        pretrained_file: the local file to load instead of ``config.pretrained`` (a name or URL
            the caller fetched); the checkpoints keep ``config.pretrained`` as configured.
    """

    def __init__(
        self,
        config: TrainConfig | dict[str, Any],
        cache: Any,
        *,
        callbacks: Sequence[EpochCallback] = (),
        batch_callbacks: Sequence[BatchCallback] = (),
        dist_info: DistInfo | None = None,
        criterion: Callable | None = None,
        augment: AugmentConfig | None = None,
        checkpoint_meta: dict[str, Any] | None = None,
        pretrained_file: str | Path | None = None,
    ) -> None:
        if not isinstance(config, TrainConfig):
            config = TrainConfig.from_mapping(config)
        self.config = config
        self.checkpoint_meta = dict(checkpoint_meta or {})
        self.pretrained = pretrained_file or config.pretrained  # the file the model starts from
        self.cache = cache
        self.callbacks = list(callbacks)
        self.batch_callbacks = list(batch_callbacks)
        self.dist = dist_info or DistInfo()
        self.criterion = criterion
        self.augment = augment
        self.save_dir = Path(self.config.save_dir)
        self.last_path = self.save_dir / "last.pt"
        self.best_path = self.save_dir / "best.pt"
        self._resume: Path | None = None  # the checkpoint this run continues (set by fit)

    # ----------------------------------------------------------------------------- training
    def fit(self) -> TrainResult:
        """Run the training loop; returns the checkpoint paths and the history.

        Set-up (:meth:`_setup`), then per epoch one pass over the data (:meth:`_train_epoch`)
        and the end-of-epoch step (:meth:`_end_epoch`: validate, record, save, early stop).
        SIGINT/SIGTERM stop a single-process run at the next step boundary (:mod:`.interrupt`).

        Raises:
            NonFiniteLossError: when the loss becomes NaN/inf (``last.pt`` keeps the last epoch).
            FileNotFoundError: when ``resume`` names a missing checkpoint.
            TrainingInterrupted: on a signal, after writing a resumable ``last.pt``.
            CheckpointWriteError: the system refused to write a checkpoint (disk full...).
        """
        stop = StopRequest()
        guard = contextlib.nullcontext() if self.dist.enabled else stop.installed()
        with guard:
            run = self._setup(None if self.dist.enabled else stop)
            stopped_early = False
            for epoch in range(run.progress.start_epoch, self.config.epochs):
                epoch_start = time.perf_counter()
                stats = self._train_epoch(run, epoch)
                if stats.stopped:
                    self._stop_mid_epoch(run, epoch, stats, stop)
                if self._end_epoch(run, epoch, stats, epoch_start):
                    stopped_early = True
                    break
                if stop() and epoch + 1 < self.config.epochs:
                    assert stop.signum is not None
                    raise TrainingInterrupted(stop.signum, self.last_path, epoch + 1, 0)
        progress = run.progress
        return TrainResult(self.last_path, self.best_path, progress.history,
                           progress.best_fitness, stopped_early)  # fmt: skip

    def _stop_mid_epoch(self, run: _Run, epoch: int, stats: EpochStats, stop: StopRequest) -> None:
        """Write ``last.pt`` at this step boundary (resumable mid-epoch), then raise."""
        assert stop.signum is not None and run.objects.ema is not None
        batches = run.schedule.batches_per_epoch
        training = train_state.snapshot(epoch - 1, run.objects, run.progress, batches,
                                        partial=stats.partial)  # fmt: skip
        config = self._checkpoint_config(run, epoch + 1)
        train_state.write(self.last_path, run.objects.ema, config, training)
        raise TrainingInterrupted(stop.signum, self.last_path, epoch, stats.steps)

    def _checkpoint_config(self, run: _Run, epochs: int) -> dict[str, Any]:
        """The checkpoint's ``config`` after ``epochs`` epochs (the last one possibly partial):
        ``precision`` says what they trained in."""
        options = run.options
        meta = {
            "optimizer": optimizer_record(run.objects.optimizer),
            "precision": describe(options.autocast_dtype, options.first_reduced_epoch, epochs),
            **self.checkpoint_meta,
        }
        return train_state.checkpoint_config(
            run.objects.model, self.config, run.imgsz, run.names, **meta
        )

    # ----------------------------------------------------------------------------- set-up
    def _setup(self, stop: StopRequest | None) -> _Run:
        """Build the run in a straight line: process, model, data, optimization, resume state.

        The order is also the order in which the seeded global RNG is drawn (the model's
        initialisation) and a resume restores it: keep it.
        """
        self._resume = self._resume_path()
        device = self._prepare_process()
        model = self._place_model(device)
        criterion = self._build_criterion()
        workers = loader_workers(
            self.config.workers,
            device_type=device.type,
            threads=torch.get_num_threads(),
            processes=self.dist.local_world_size,
        )
        loader = self._build_train_loader(device, workers)
        objects, schedule = self._build_optimization(model, device, len(loader))
        progress = self._restore(objects, device)
        val_loader = self._build_val_loader(device, workers)
        options = self._loop_options(device, schedule, stop)
        self._log_start(device, workers, options)
        wrapped = wrap_model(model, device, self.dist, self.config.sync_bn)
        return _Run(
            device=device, imgsz=options.imgsz, names=list(self.cache.names), objects=objects,
            progress=progress, ddp_model=maybe_compile(wrapped, model, self.config.compile),
            criterion=criterion, loader=loader, val_loader=val_loader, schedule=schedule,
            options=options,
        )  # fmt: skip

    def _prepare_process(self) -> torch.device:
        """Check the splits, keep an unfinished run aside, pick the device, threads and seeds."""
        cfg = self.config
        run_guard.check_splits(cfg.train_split, cfg.val_split)
        device = select_device(cfg.device)
        if self._resume is None and self.dist.is_main:
            run_guard.set_aside_unfinished(self.save_dir)  # never overwrite a resumable run
        if self.dist.enabled and device.type == "cuda":
            device = torch.device("cuda", self.dist.local_rank)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        if device.type == "cpu" and cfg.cpu_memory_reuse:
            retain_freed_memory()
        train_state.seed_everything(cfg.seed + 1, cfg.deterministic)
        return device

    def _resume_path(self) -> Path | None:
        return run_guard.resume_path(self.config.resume, self.save_dir)

    def _build_model(self) -> nn.Module:
        names = list(self.cache.names)
        model = build_model(self.config.scale, num_classes=len(names), names=names)
        if self.pretrained and self._resume is None:  # a resume loads the checkpoint's weights
            load_pretrained(model, self.pretrained, self.config.scale)
        for name, param in model.named_parameters():
            if ".dfl" in name:  # the DFL projection is a fixed 0..15 ramp, never trained
                param.requires_grad_(False)
        return model

    def _place_model(self, device: torch.device) -> nn.Module:
        model = self._build_model().to(device)
        if self.config.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def _build_criterion(self) -> Criterion:
        if self.criterion is not None:
            return self.criterion
        criterion = DetectionLoss(
            len(self.cache.names), strides=(8, 16, 32), min_candidate_side=self.config.tal_min_side
        )
        criterion.sync_normaliser = self.dist.enabled  # one normaliser for the global batch
        return criterion

    def _build_train_loader(self, device: torch.device, workers: int) -> Any:
        cfg = self.config
        loader = build_train_loader(
            self.cache,
            split=cfg.train_split,
            batch_size=cfg.batch,
            augment=self.augment if self.augment is not None else AugmentConfig(),
            seed=cfg.seed,
            workers=workers,
            epochs=cfg.epochs,
            close_mosaic=cfg.close_mosaic,
            shuffle=True,
            pin_memory=device.type == "cuda",  # page-locked: asynchronous copies to the GPU
        )
        return shard_loader(loader, self.dist) if self.dist.enabled else loader

    def _build_val_loader(self, device: torch.device, workers: int) -> Any:
        cfg = self.config
        if not cfg.val or not self.dist.is_main:
            return None
        pinned = device.type == "cuda"
        return build_eval_loader(self.cache, cfg.val_split, cfg.val_batch, workers, pinned)

    def _build_optimization(
        self, model: nn.Module, device: torch.device, batches_per_epoch: int
    ) -> tuple[RunObjects, StepSchedule]:
        """Optimizer (three parameter groups), per-epoch LR schedule, scaler, EMA, step plan."""
        sizes = RunSizes(len(self.cache.names), self._num_images(), batches_per_epoch)
        return build_optimization(model, self.config, device, sizes, self.dist)

    def _restore(self, objects: RunObjects, device: torch.device) -> train_state.Progress:
        """A fresh start, or the state of the ``resume`` checkpoint loaded into ``objects``."""
        resume_from = self._resume
        if resume_from is None:
            return train_state.Progress()
        progress = train_state.restore(resume_from, objects, device)
        LOGGER.info("resuming from %s at epoch %d", resume_from, progress.start_epoch + 1)
        if progress.start_epoch >= self.config.epochs:
            raise ValueError(
                f"{resume_from} already finished {self.config.epochs} epochs; nothing to resume"
            )
        return progress

    def _loop_options(
        self, device: torch.device, schedule: StepSchedule, stop: StopRequest | None
    ) -> LoopOptions:
        cfg = self.config
        precision = autocast_dtype(device, amp=cfg.amp, bf16=cfg.bf16)
        first_reduced = first_bf16_epoch(
            precision, fp32_steps=cfg.bf16_after_steps, from_scratch=not self.pretrained,
            steps_per_epoch=schedule.batches_per_epoch / accumulate_steps(cfg.nbs, cfg.batch),
        )  # fmt: skip
        return LoopOptions(
            autocast_dtype=precision,
            first_reduced_epoch=first_reduced,
            channels_last=cfg.channels_last,
            imgsz=int(self.cache.imgsz),
            progress=cfg.progress and self.dist.is_main,
            callbacks=tuple(self.batch_callbacks),
            should_stop=stop,
        )

    def _log_start(self, device: torch.device, workers: int, options: LoopOptions) -> None:
        cfg = self.config
        if not cfg.val:
            LOGGER.info(
                "validation is off: best.pt will be the final EMA weights and patience is ignored"
            )
        precision = describe(options.autocast_dtype, options.first_reduced_epoch, cfg.epochs)
        LOGGER.info(
            "training YOLO11%s on %s: %d images, imgsz %d, batch %d, %d epochs, %s, "
            "%d loader worker(s), %d thread(s)", cfg.scale, device, self._num_images(),
            options.imgsz, cfg.batch, cfg.epochs, precision, workers, torch.get_num_threads(),
        )  # fmt: skip

    def _num_images(self) -> int:
        return len(self.cache.indices(self.config.train_split))

    # ----------------------------------------------------------------------------- epochs
    def _train_epoch(self, run: _Run, epoch: int) -> EpochStats:
        """One pass over the training data (see :func:`engine.train_one_epoch`)."""
        cfg = self.config
        run.loader.set_epoch(epoch)
        closing = epoch == max(cfg.epochs - cfg.close_mosaic, 0) and cfg.close_mosaic > 0
        if closing and self.dist.is_main:
            LOGGER.info("closing mosaic from epoch %d", epoch + 1)
        stats = train_one_epoch(
            run.ddp_model, run.criterion, run.loader, run.objects, run.device, epoch,
            run.schedule, run.options,
        )  # fmt: skip
        if stats.stopped:  # the epoch continues on resume: the schedule steps after it
            return stats
        with warnings.catch_warnings():
            # a run whose first epoch only accumulates (no optimizer.step yet) is expected
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            run.objects.scheduler.step()
        stats.losses = all_reduce_mean(stats.losses, self.dist)
        return stats

    def _end_epoch(self, run: _Run, epoch: int, stats: EpochStats, epoch_start: float) -> bool:
        """Validate (main process), record the row, save checkpoints, call back; True = stop."""
        cfg = self.config
        stop = False
        if self.dist.is_main:
            ema = run.objects.ema
            assert ema is not None
            metrics = self._validate(ema, run.val_loader, run.names)
            row = train_state.history_row(epoch, stats, metrics, run.imgsz, epoch_start)
            improved = run.progress.record(row, epoch, validated=run.val_loader is not None)
            stop = run.progress.epochs_without_improvement >= cfg.patience
            final = stop or epoch + 1 == cfg.epochs
            batches = run.schedule.batches_per_epoch
            training = train_state.snapshot(epoch, run.objects, run.progress, batches, final=final)
            config = self._checkpoint_config(run, epoch + 1)
            train_state.write(self.last_path, ema, config, training)
            if improved:  # the same bytes: link (or copy) instead of serialising twice
                atomic_copy(self.last_path, self.best_path)
            LOGGER.info(
                train_state.format_row(row, cfg.epochs, validated=run.val_loader is not None)
            )
            for callback in self.callbacks:
                callback(epoch + 1, row)
        stop = broadcast_object(stop, self.dist)
        barrier(self.dist)
        if stop:
            LOGGER.info(
                "early stop: no improvement for %d epochs (best fitness %.5f at epoch %d)",
                cfg.patience,
                run.progress.best_fitness,
                run.progress.best_epoch + 1,
            )
        return stop

    def _validate(self, ema: ModelEMA, val_loader: Any, names: list[str]) -> dict[str, float]:
        """Metrics of the EMA model on the validation split (all 0 when validation is off)."""
        if val_loader is None:
            return dict.fromkeys(("precision", "recall", "mAP50", "mAP50-95", "fitness"), 0.0)
        result = evaluate(ema.module, val_loader, names)  # batches follow the model's device
        return {k: float(v) for k, v in result.metrics.items()}
