"""Kedro node of the ``training`` pipeline: a thin adapter around :class:`Trainer`."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from yolo_mlops.params import parse_params
from yolo_mlops.pipelines.train import launch
from yolo_mlops.tracking import orphans
from yolo_mlops.weights_cache import fetch_weights
from yolo_mlops.yolo.data.augment import AugmentConfig
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


def _duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def eta_callback(epochs: int) -> EpochCallback:
    """``on_epoch_end`` that logs the time left (mean epoch time so far × epochs left).

    With progress bars off (CI, ``dvc repro``) this line and the trainer's own epoch line are
    the only sign of life, so each one says when the run will end.
    """
    seconds: list[float] = []

    def on_epoch_end(epoch: int, row: dict[str, float]) -> None:
        seconds.append(float(row.get("time/epoch", 0.0)))
        mean = sum(seconds) / len(seconds)
        left = max(epochs - epoch, 0)
        logger.info(
            "epoch %d/%d done: %.1f s/epoch, ETA %s", epoch, epochs, mean, _duration(mean * left)
        )

    return on_epoch_end


def train_model(
    image_cache: Any,
    parameters: dict[str, Any],
    augment: dict[str, Any] | None = None,
    callbacks: list[Callable[[int, dict[str, float]], None]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    """Train on ``image_cache`` with the ``training`` block and ``preprocessing.augment``.

    More than one process (``training.device: 0,1``, ``training.nproc: 2``, or a Kubeflow
    TrainJob) runs torchrun workers instead (see ``launch.py``; ``callbacks`` then do not run:
    rank 0 logs the epochs to MLflow itself).

    ``training.pretrained`` may name an official release (``yolo11n.pt``) or a URL: it is fetched
    into the weights cache (normally already done by the run-start hook, so no request here) and
    the trainer gets the local file. Both checkpoints record what was used under
    ``config["base_weights"]`` (name, url, sha256, size...; None from scratch).

    Returns:
        (best checkpoint dict, last checkpoint dict, per-epoch history table). The best
        checkpoint is stripped of its resume state (``training = None``, like a released model);
        ``last`` keeps it so ``training.resume`` can continue the run.
    """
    config = parse_params(TrainConfig, parameters, BLOCK)
    pretrained = config.pretrained
    base = fetch_weights(
        config.pretrained,
        parameter="training.pretrained",
        base_url=config.weights_base_url,
        sha256=config.pretrained_sha256,
    )
    if base is not None:
        config = dataclasses.replace(config, pretrained=base.path)
        parameters = {**parameters, "pretrained": base.path}
    augment_config = parse_params(AugmentConfig, augment, "preprocessing.augment")
    plan = launch.plan_launch(config, nodes=launch.requested_nodes())
    meta = orphans.checkpoint_meta()
    save_dir = Path(config.save_dir)
    # one training run per model folder; a run its previous holder left RUNNING is closed
    with run_guard.exclusive_save_dir(save_dir, meta) as previous:
        orphans.close_stale(previous, save_dir)
        resume = run_guard.resume_path(config.resume, save_dir)
        if resume is not None:
            orphans.link_resume(torch.load(resume, map_location="cpu", weights_only=True))
        if plan.distributed:
            cache_dir = getattr(image_cache, "root", None)
            blocks = {"augment": dict(augment or {})}
            result = launch.train_distributed(config, parameters, blocks, cache_dir, plan)
        else:
            hooks = [*(callbacks or []), eta_callback(config.epochs)]
            tracker = tracking_callback()
            if tracker is not None:
                hooks.append(tracker)
            config = dataclasses.replace(config, device=plan.device)
            trainer = Trainer(
                config, image_cache, callbacks=hooks, augment=augment_config, checkpoint_meta=meta
            )
            result = trainer.fit()
    best = torch.load(result.best, map_location="cpu", weights_only=True)
    best["training"] = None
    last = torch.load(result.last, map_location="cpu", weights_only=True)
    for checkpoint in (best, last):  # the value as configured, not this machine's cache path
        checkpoint["config"]["train_args"]["pretrained"] = pretrained
        checkpoint["config"]["base_weights"] = base.record() if base is not None else None
    history = pd.DataFrame(result.history)
    logger.info(
        "training done: best fitness %.5f after %d epochs%s",
        result.best_fitness,
        len(result.history),
        " (early stop)" if result.stopped_early else "",
    )
    return best, last, history
