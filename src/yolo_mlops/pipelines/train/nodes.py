"""Kedro node of the ``training`` pipeline: a thin adapter around :class:`Trainer`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from yolo_mlops.params import parse_params
from yolo_mlops.tracking import orphans
from yolo_mlops.yolo.train import run_guard
from yolo_mlops.yolo.train.trainer import EpochCallback, TrainConfig, Trainer

logger = logging.getLogger(__name__)

BLOCK = "training"


def tracking_callback() -> EpochCallback | None:
    """``on_epoch_end`` that logs the history row to MLflow via ``yolo_mlops.tracking``.

    Returns None (no per-epoch logging) when the tracking layer is not installed.
    """
    try:
        from yolo_mlops.tracking import log_epoch
    except ImportError:  # tracking layer absent: train without live curves
        logger.info("yolo_mlops.tracking not available; per-epoch metrics are not logged")
        return None

    def on_epoch_end(epoch: int, row: dict[str, float]) -> None:
        log_epoch({k: float(v) for k, v in row.items() if k != "epoch"}, step=epoch)

    return on_epoch_end


def _augment(preprocessing: dict[str, Any] | None) -> Any:
    from yolo_mlops.pipelines.preprocess.nodes import PreprocessingParams

    return parse_params(PreprocessingParams, preprocessing, "preprocessing").augment


def train_model(
    image_cache: Any,
    parameters: dict[str, Any],
    preprocessing: dict[str, Any] | None = None,
    callbacks: list[Callable[[int, dict[str, float]], None]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    """Train on ``image_cache`` with the ``training`` block; augmentation from ``preprocessing``.

    Returns:
        (best checkpoint dict, last checkpoint dict, per-epoch history table). The best
        checkpoint is stripped of its resume state (``training = None``, like a released model);
        ``last`` keeps it so ``training.resume`` can continue the run.
    """
    config = parse_params(TrainConfig, parameters, BLOCK)
    hooks = list(callbacks or [])
    tracker = tracking_callback()
    if tracker is not None:
        hooks.append(tracker)
    meta = orphans.checkpoint_meta()
    save_dir = Path(config.save_dir)
    with run_guard.exclusive_save_dir(save_dir, meta) as previous:
        orphans.close_stale(previous, save_dir)
        resume = run_guard.resume_path(config.resume, save_dir)
        if resume is not None:
            orphans.link_resume(torch.load(resume, map_location="cpu", weights_only=True))
        trainer = Trainer(
            config,
            image_cache,
            callbacks=hooks,
            augment=_augment(preprocessing),
            checkpoint_meta=meta,
        )
        result = trainer.fit()
    best = torch.load(result.best, map_location="cpu", weights_only=True)
    best["training"] = None
    last = torch.load(result.last, map_location="cpu", weights_only=True)
    history = pd.DataFrame(result.history)
    logger.info(
        "training done: best fitness %.5f after %d epochs%s",
        result.best_fitness,
        len(result.history),
        " (early stop)" if result.stopped_early else "",
    )
    return best, last, history
