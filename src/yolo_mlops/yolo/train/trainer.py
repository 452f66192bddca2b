"""The YOLO11 trainer: the recipe of spec section 4 around :func:`engine.train_one_epoch`.

``Trainer(config, cache).fit()`` builds (or loads) the model, the optimizer with three parameter
groups, the per-epoch LR schedule and the EMA; trains; evaluates the EMA model on the validation
split after every epoch; writes ``last.pt`` and ``best.pt`` (by fitness) atomically in our
checkpoint format; stops early after ``patience`` epochs without improvement. ``last.pt``
carries everything needed to continue exactly (see :mod:`yolo_mlops.yolo.train.state`).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from yolo_mlops.params import params_to_dict, parse_params
from yolo_mlops.yolo import run_guard, train_state
from yolo_mlops.yolo.train.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    broadcast_object,
    shard_loader,
    wrap_model,
)
from yolo_mlops.yolo.train.ema import ModelEMA, unwrap
from yolo_mlops.yolo.train.engine import BatchCallback, LoopState, StepSchedule, train_one_epoch
from yolo_mlops.yolo.train.optim import (
    LRFactor,
    accumulate_steps,
    build_optimizer,
    build_scheduler,
    resolve_optimizer,
    warmup_iterations,
)

LOGGER = logging.getLogger(__name__)

#: ``callback(epoch, row)`` after every epoch; ``epoch`` = completed epochs (1-based).
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainConfig:
    """The ``training`` parameter block (defaults = the reference recipe, spec 4.1).

    The image size comes from the image cache. ``resume``: False, True (``save_dir/last.pt``) or
    a checkpoint path. ``pretrained``: "" (scratch), our checkpoint or an Ultralytics ``.pt``.
    ``threads``: torch intra-op threads (0 = torch's default). ``channels_last``: NHWC weights
    and inputs (measured on 2 CPU cores: +4% images/s at 320, +30% at 640, same arithmetic).
    The augmentation settings are the preprocessing block's ``AugmentConfig`` (passed to
    :class:`Trainer` separately).
    """

    scale: Literal["n", "s", "m", "l", "x"] = "n"
    epochs: int = 100
    batch: int = 16
    optimizer: Literal["SGD", "AdamW", "auto"] = "auto"
    lr0: float = 0.01
    lrf: float = 0.01
    momentum: float = 0.937
    weight_decay: float = 5e-4
    warmup_epochs: float = 3.0
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.1
    cos_lr: bool = False
    nbs: int = 64
    close_mosaic: int = 10
    patience: int = 100
    seed: int = 0
    deterministic: bool = True
    device: str = "auto"
    workers: int = 0
    threads: int = 0
    amp: bool = True
    bf16: bool = False
    channels_last: bool = True
    sync_bn: bool = False
    clip_grad: float = 10.0
    pretrained: str = ""
    resume: bool | str = False
    save_dir: str = "data/06_models/run"
    train_split: str = "train"
    val_split: str = "val"
    val_batch: int = 32
    val: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch < 1 or self.nbs < 1:
            raise ValueError("epochs, batch and nbs must be >= 1")
        if self.lr0 <= 0 or not 0 < self.lrf <= 1:
            raise ValueError("lr0 must be > 0 and lrf in (0, 1]")


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` leaves behind: checkpoint paths, history, best fitness."""

    last: Path
    best: Path
    history: list[dict[str, float]]
    best_fitness: float
    stopped_early: bool


def select_device(name: str) -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; otherwise ``torch.device(name)``."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    run_guard.check_device(name)
    return torch.device(int(name) if name.isdigit() else name)


def transfer_weights(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> int:
    """Copy tensors whose name *and* shape match into ``model``; return how many were copied.

    Mismatched class counts leave the classification outputs at their fresh initialisation.
    """
    own = model.state_dict()
    matched = {
        k: v.to(own[k].dtype) for k, v in state_dict.items() if k in own and v.shape == own[k].shape
    }
    model.load_state_dict(matched, strict=False)
    LOGGER.info("transferred %d/%d tensors from the pretrained weights", len(matched), len(own))
    return len(matched)


class Trainer:
    """Train a YOLO11 detector on an ``ImageCache`` (see the module docstring).

    Args:
        config: the parameter block.
        cache: an opened ``ImageCache`` (image size, names, splits).
        callbacks: ``on_epoch_end(epoch, row)`` functions (main process only).
        batch_callbacks: ``(epoch, step)`` functions after every batch.
        dist_info: DDP process info (default: single process).
        criterion: loss override (tests); default ``DetectionLoss(nc)``.
        augment: training augmentation (default ``AugmentConfig()``, spec 4.1).
        checkpoint_meta: extra plain entries for the checkpoints' ``config`` (e.g. the tracking
            run that trains them, so a resume or a later registration finds it).
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
        augment: Any = None,
        checkpoint_meta: dict[str, Any] | None = None,
    ) -> None:
        self.config = parse_params(TrainConfig, config, "training")
        self.checkpoint_meta = dict(checkpoint_meta or {})
        self.cache = cache
        self.callbacks = list(callbacks)
        self.batch_callbacks = list(batch_callbacks)
        self.dist = dist_info or DistInfo()
        self.criterion = criterion
        self.augment = augment
        self.save_dir = Path(self.config.save_dir)
        self.last_path = self.save_dir / "last.pt"
        self.best_path = self.save_dir / "best.pt"

    # ----------------------------------------------------------------------------- set-up
    def _resume_path(self) -> Path | None:
        return run_guard.resume_path(self.config.resume, self.save_dir)

    def _build_model(self) -> nn.Module:
        from yolo_mlops.yolo.io.checkpoint import read_checkpoint
        from yolo_mlops.yolo.model.network import build_model

        names = list(self.cache.names)
        model = build_model(self.config.scale, num_classes=len(names), names=names)
        if self.config.pretrained:
            transfer_weights(model, read_checkpoint(self.config.pretrained)["state_dict"])
        for name, param in model.named_parameters():
            if ".dfl" in name:  # the DFL projection is a fixed 0..15 ramp, never trained
                param.requires_grad_(False)
        return model

    def _autocast_dtype(self, device: torch.device) -> torch.dtype | None:
        if device.type == "cuda" and self.config.amp:
            return torch.float16
        if device.type == "cpu" and self.config.bf16:
            return torch.bfloat16
        return None

    # ----------------------------------------------------------------------------- training
    def fit(self) -> TrainResult:
        """Run the training loop; returns the checkpoint paths and the history.

        Raises:
            NonFiniteLossError: when the loss becomes NaN/inf (``last.pt`` keeps the last epoch).
            FileNotFoundError: when ``resume`` names a missing checkpoint.
        """
        from yolo_mlops.yolo.data.loader import build_eval_loader, build_train_loader
        from yolo_mlops.yolo.train.loss import DetectionLoss

        cfg = self.config
        run_guard.check_splits(cfg.train_split, cfg.val_split)
        device = select_device(cfg.device)
        if self._resume_path() is None and self.dist.is_main:
            run_guard.set_aside_unfinished(self.save_dir)  # never overwrite a resumable run
        if self.dist.enabled and device.type == "cuda":
            device = torch.device("cuda", self.dist.local_rank)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        train_state.seed_everything(cfg.seed + 1, cfg.deterministic)
        imgsz = int(self.cache.imgsz)
        names = list(self.cache.names)
        global_batch = cfg.batch
        model = self._build_model().to(device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        criterion = self.criterion or DetectionLoss(len(names), strides=(8, 16, 32))

        loader = build_train_loader(
            self.cache,
            split=cfg.train_split,
            batch_size=global_batch,
            augment=self._augment_config(),
            seed=cfg.seed,
            workers=cfg.workers,
            epochs=cfg.epochs,
            close_mosaic=cfg.close_mosaic,
            shuffle=True,
        )
        if self.dist.enabled:
            loader = shard_loader(loader, self.dist)
        nb = len(loader)
        num_images = len(self.cache.indices(cfg.train_split))
        choice = resolve_optimizer(
            cfg.optimizer,
            lr0=cfg.lr0,
            momentum=cfg.momentum,
            warmup_bias_lr=cfg.warmup_bias_lr,
            num_classes=len(names),
            num_images=num_images,
            batch_size=global_batch,
            epochs=cfg.epochs,
            nbs=cfg.nbs,
        )
        accumulate = accumulate_steps(cfg.nbs, global_batch)
        decay = cfg.weight_decay * global_batch * accumulate / cfg.nbs
        optimizer = build_optimizer(model, choice, decay)
        lr_factor = LRFactor(cfg.epochs, cfg.lrf, cfg.cos_lr)
        scheduler = build_scheduler(optimizer, lr_factor)
        scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and cfg.amp)
        ema = ModelEMA(model) if self.dist.is_main else None
        loop = LoopState(accumulate=accumulate)
        run = train_state.RunObjects(model, ema, optimizer, scheduler, scaler, loop)
        progress = train_state.Progress()

        resume_from = self._resume_path()
        if resume_from is not None:
            progress = train_state.restore(resume_from, run, device)
            LOGGER.info("resuming from %s at epoch %d", resume_from, progress.start_epoch + 1)
            if progress.start_epoch >= cfg.epochs:
                raise ValueError(
                    f"{resume_from} already finished {cfg.epochs} epochs; nothing to resume"
                )
        ddp_model = wrap_model(model, device, self.dist, cfg.sync_bn)
        val_loader = None
        if cfg.val and self.dist.is_main:
            val_loader = build_eval_loader(
                self.cache, split=cfg.val_split, batch_size=cfg.val_batch, workers=cfg.workers
            )
        schedule = StepSchedule(
            epochs=cfg.epochs,
            batches_per_epoch=nb,
            batch_size=global_batch,
            nbs=cfg.nbs,
            warmup_iters=warmup_iterations(cfg.warmup_epochs, nb),
            warmup_bias_lr=choice.warmup_bias_lr,
            warmup_momentum=cfg.warmup_momentum,
            momentum=cfg.momentum,
            lr_factor=lr_factor,
            clip_grad=cfg.clip_grad,
            world_size=self.dist.world_size,
        )
        autocast_dtype = self._autocast_dtype(device)
        LOGGER.info(
            "training YOLO11%s on %s: %d images, imgsz %d, batch %d, %d epochs, %s",
            cfg.scale,
            device,
            num_images,
            imgsz,
            global_batch,
            cfg.epochs,
            autocast_dtype or "fp32",
        )
        stopped_early = False
        for epoch in range(progress.start_epoch, cfg.epochs):
            epoch_start = time.perf_counter()
            loader.set_epoch(epoch)
            closing = epoch == max(cfg.epochs - cfg.close_mosaic, 0) and cfg.close_mosaic > 0
            if closing and self.dist.is_main:
                LOGGER.info("closing mosaic from epoch %d", epoch + 1)
            stats = train_one_epoch(
                ddp_model,
                criterion,
                loader,
                optimizer=optimizer,
                scaler=scaler,
                ema=ema,
                epoch=epoch,
                schedule=schedule,
                state=loop,
                device=device,
                autocast_dtype=autocast_dtype,
                channels_last=cfg.channels_last,
                imgsz=imgsz,
                progress=cfg.progress and self.dist.is_main,
                callbacks=self.batch_callbacks,
            )
            with warnings.catch_warnings():
                # a run whose first epoch only accumulates (no optimizer.step yet) is expected
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                scheduler.step()
            stats.losses = all_reduce_mean(stats.losses, self.dist)
            stop = False
            if self.dist.is_main:
                assert ema is not None
                metrics = self._validate(ema, val_loader, names, device, stats.losses)
                row = train_state.history_row(epoch, stats, metrics, imgsz, epoch_start)
                improved = progress.record(row, epoch)
                stop = progress.epochs_without_improvement >= cfg.patience
                final = stop or epoch + 1 == cfg.epochs
                training = train_state.snapshot(epoch, run, progress, nb, final=final)
                config = self._checkpoint_config(model, imgsz, names)
                train_state.write(self.last_path, ema, config, training)
                if improved:
                    train_state.write(self.best_path, ema, config, training)
                LOGGER.info(train_state.format_row(row, cfg.epochs))
                for callback in self.callbacks:
                    callback(epoch + 1, row)
            stop = broadcast_object(stop, self.dist)
            barrier(self.dist)
            if stop:
                LOGGER.info(
                    "early stop: no improvement for %d epochs (best fitness %.5f at epoch %d)",
                    cfg.patience,
                    progress.best_fitness,
                    progress.best_epoch + 1,
                )
                stopped_early = True
                break
        return TrainResult(
            last=self.last_path,
            best=self.best_path,
            history=progress.history,
            best_fitness=progress.best_fitness,
            stopped_early=stopped_early,
        )

    def _augment_config(self) -> Any:
        from yolo_mlops.yolo.data.augment import AugmentConfig

        return self.augment if self.augment is not None else AugmentConfig()

    def _validate(
        self,
        ema: ModelEMA,
        val_loader: Any,
        names: list[str],
        device: torch.device,
        losses: list[float],
    ) -> dict[str, float]:
        """Metrics of the EMA model on the validation split (fitness = -loss without val)."""
        if val_loader is None:
            return {
                "precision": 0.0,
                "recall": 0.0,
                "mAP50": 0.0,
                "mAP50-95": 0.0,
                "fitness": -float(sum(losses)),
            }
        from yolo_mlops.yolo.eval.evaluate import evaluate

        result = evaluate(ema.module, val_loader, names, device=str(device))
        return {k: float(v) for k, v in result.metrics.items()}

    def _checkpoint_config(self, model: nn.Module, imgsz: int, names: list[str]) -> dict:
        from yolo_mlops import __version__

        bare = unwrap(model)
        return {
            "scale": self.config.scale,
            "nc": len(names),
            "names": list(names),
            "imgsz": imgsz,
            "stride": [int(s) for s in bare.stride.tolist()],
            "project_version": __version__,
            "train_args": params_to_dict(self.config),
            **self.checkpoint_meta,
        }
