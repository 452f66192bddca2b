"""What a training run carries from epoch to epoch, and its round trip through ``last.pt``.

The ``training`` entry of our checkpoint (spec: plain Python + tensors only, so that
``torch.load(weights_only=True)`` reads it) holds::

    epoch                  0-based index of the last completed epoch
    model                  state_dict of the trained (non-EMA) model
    ema                    {"updates": int}; the EMA weights are the checkpoint's top-level
                           ``state_dict`` (stored once, not twice)
    optimizer, scheduler, scaler   their state_dicts
    last_opt_step, accumulate      accumulation bookkeeping (accumulation may span epochs)
    pending_grads          None, or the gradients summed since the last optimizer step
    best_fitness, best_epoch, epochs_without_improvement
    history                list of per-epoch rows (str -> float)
    partial_epoch          None, or (a run stopped mid-epoch by a signal) the meter of epoch
                           ``epoch + 1`` so far: ``steps`` (batches trained), ``running`` (mean
                           box/cls/dfl losses), ``images``, ``instances``, ``time_data``,
                           ``time_compute``; the resumed run skips those batches
    rng                    {"torch": ByteTensor, "cuda": [ByteTensor] | None,
                            "numpy": bit-generator state as plain types, "python": tuple}

With all of it restored, a resumed run repeats the uninterrupted run's arithmetic exactly.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from yolo_mlops.yolo.io.checkpoint import save_checkpoint
from yolo_mlops.yolo.io.format import LIBRARY_VERSION
from yolo_mlops.yolo.train.config import TrainConfig
from yolo_mlops.yolo.train.ema import ModelEMA, unwrap
from yolo_mlops.yolo.train.engine import EpochStats, RunObjects

LOGGER = logging.getLogger(__name__)

LOSS_KEYS = ("train/box_loss", "train/cls_loss", "train/dfl_loss")
METRIC_KEYS = {
    "precision": "metrics/precision",
    "recall": "metrics/recall",
    "mAP50": "metrics/mAP50",
    "mAP50-95": "metrics/mAP50-95",
}


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed python, numpy and torch; optionally ask torch for deterministic algorithms.

    Deterministic mode does not also fill every new tensor with NaN before its first write
    (torch's ``fill_uninitialized_memory``, a debugging aid that deterministic mode turns on):
    every op overwrites its output, so the fill changes no result, and it cost 4-11 % of a CPU
    training step (design §12).
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = False
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def rng_state() -> dict[str, Any]:
    """All global RNG states as checkpoint-safe values."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state = {
        "bit_generator": str(numpy_state["bit_generator"]),
        "key": [int(k) for k in numpy_state["state"]["key"]],
        "pos": int(numpy_state["state"]["pos"]),
        "has_gauss": int(numpy_state["has_gauss"]),
        "gauss": float(numpy_state["gauss"]),
    }
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": numpy_state,
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {
                "key": np.asarray(numpy_state["key"], dtype=np.uint32),
                "pos": numpy_state["pos"],
            },
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


@dataclass
class Progress:
    """Epoch bookkeeping: where to start, the best fitness so far, the history."""

    start_epoch: int = 0
    best_fitness: float | None = None
    best_epoch: int = -1
    epochs_without_improvement: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    def record(self, row: dict[str, float], epoch: int, validated: bool = True) -> bool:
        """Add an epoch's row; returns True when its fitness is the best so far (ties count).

        Without validation (``validated=False``) there is no fitness to compare: every epoch
        counts as the best, so ``best.pt`` ends as the final EMA weights and nothing stops early.
        """
        self.history.append(row)
        fitness = row["fitness"]
        improved = not validated or self.best_fitness is None or fitness >= self.best_fitness
        if improved:
            self.best_fitness, self.best_epoch = fitness, epoch
        self.epochs_without_improvement = epoch - self.best_epoch
        return improved


def history_row(
    epoch: int, stats: EpochStats, metrics: dict[str, float], imgsz: int, epoch_start: float
) -> dict[str, float]:
    """One row of ``training_history.csv``; ``epoch`` in the row is 1-based."""
    row: dict[str, float] = {"epoch": epoch + 1}
    row.update(zip(LOSS_KEYS, (float(v) for v in stats.losses), strict=True))
    row.update({column: float(metrics[key]) for key, column in METRIC_KEYS.items()})
    row["fitness"] = float(metrics["fitness"])
    row.update({f"lr/pg{i}": lr for i, lr in enumerate(stats.lrs)})
    row["time/epoch"] = time.perf_counter() - epoch_start
    row["time/data"] = stats.time_data
    row["time/compute"] = stats.time_compute
    row["instances"] = stats.instances
    row["imgsz"] = imgsz
    return row


def format_row(row: dict[str, float], epochs: int, validated: bool = True) -> str:
    """A one-line log summary of a history row; P, R and mAP only when the epoch was validated
    (without validation the row's metric columns are placeholders, not measurements)."""
    losses = (
        f"epoch {int(row['epoch'])}/{epochs}: loss box {row['train/box_loss']:.4f} "
        f"cls {row['train/cls_loss']:.4f} dfl {row['train/dfl_loss']:.4f} | "
    )
    metrics = (
        f"P {row['metrics/precision']:.3f} R {row['metrics/recall']:.3f} "
        f"mAP50 {row['metrics/mAP50']:.4f} mAP50-95 {row['metrics/mAP50-95']:.4f} | "
    )
    timing = f"{row['time/epoch']:.1f}s (data {row['time/data']:.1f}s)"
    return losses + (metrics if validated else "") + timing


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in unwrap(module).state_dict().items()}


def snapshot(
    epoch: int,
    run: RunObjects,
    progress: Progress,
    batches_per_epoch: int,
    *,
    final: bool = False,
    partial: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``training`` entry after ``epoch`` (see the module docstring).

    ``final``: the run ends here, so gradients not yet stepped are dropped (nothing continues).
    ``partial``: the next epoch stopped midway (``EpochMeter.partial()``: its ``steps`` batches
    are trained); ``epoch`` is then the last *completed* epoch (-1 when none was).
    """
    model, loop = run.model, run.loop
    assert run.ema is not None, "snapshots are taken on the main process, which has the EMA"
    last_iteration = (epoch + 1) * batches_per_epoch - 1 + (partial["steps"] if partial else 0)
    pending = None
    if loop.last_opt_step != last_iteration and not final:
        pending = [
            None if p.grad is None else p.grad.detach().cpu().clone()
            for p in unwrap(model).parameters()
        ]
    return {
        "epoch": epoch,
        "model": _cpu_state(model),
        "ema": {"updates": run.ema.updates},
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "last_opt_step": loop.last_opt_step,
        "accumulate": loop.accumulate,
        "pending_grads": pending,
        "best_fitness": progress.best_fitness,
        "best_epoch": progress.best_epoch,
        "epochs_without_improvement": progress.epochs_without_improvement,
        "history": [dict(row) for row in progress.history],
        "rng": rng_state(),
        "partial_epoch": dict(partial) if partial else None,
    }


def checkpoint_config(
    model: nn.Module, config: TrainConfig, imgsz: int, names: list[str], **meta: Any
) -> dict[str, Any]:
    """The checkpoint's ``config`` entry: what the model is, the training parameters, ``meta``."""
    return {
        "scale": config.scale,
        "nc": len(names),
        "names": list(names),
        "imgsz": imgsz,
        "stride": [int(s) for s in unwrap(model).stride.tolist()],
        "project_version": LIBRARY_VERSION,
        "train_args": dataclasses.asdict(config),
        **meta,
    }


def write(path: Path, ema: ModelEMA, config: dict[str, Any], training: dict[str, Any]) -> None:
    """Write our checkpoint atomically: EMA weights (float32) + config + training state."""
    state = {
        k: v.float() if v.is_floating_point() else v for k, v in _cpu_state(ema.module).items()
    }
    save_checkpoint(path, state_dict=state, config=config, training=training)


def restore(path: Path, run: RunObjects, device: torch.device) -> Progress:
    """Load everything :func:`snapshot` saved back into the live objects; return the progress.

    Raises:
        ValueError: when the checkpoint has no training state (e.g. a final, stripped file).
    """
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    training = ckpt.get("training")
    if not training:
        raise ValueError(f"{path} has no training state to resume from (use it as pretrained)")
    bare = unwrap(run.model)
    bare.load_state_dict(training["model"])
    if run.ema is not None:
        run.ema.module.load_state_dict(ckpt["state_dict"])
        run.ema.updates = int(training["ema"]["updates"])
    run.optimizer.load_state_dict(training["optimizer"])
    run.scheduler.load_state_dict(training["scheduler"])
    run.scaler.load_state_dict(training["scaler"])
    run.loop.last_opt_step = int(training["last_opt_step"])
    run.loop.accumulate = int(training["accumulate"])
    if training.get("pending_grads") is not None:
        for param, grad in zip(bare.parameters(), training["pending_grads"], strict=True):
            param.grad = None if grad is None else grad.to(device)
    set_rng_state(training["rng"])
    partial = training.get("partial_epoch")
    run.loop.skip_steps = int(partial["steps"]) if partial else 0
    run.loop.partial = dict(partial) if partial else None
    return Progress(
        start_epoch=int(training["epoch"]) + 1,
        best_fitness=training["best_fitness"],
        best_epoch=int(training["best_epoch"]),
        epochs_without_improvement=int(training["epochs_without_improvement"]),
        history=[dict(row) for row in training["history"]],
    )
