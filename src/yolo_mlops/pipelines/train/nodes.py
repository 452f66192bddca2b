"""Kedro node of the ``training`` pipeline: a thin adapter around :class:`Trainer`."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch

from yolo_mlops.params import parse_params
from yolo_mlops.weights_cache import fetch_weights
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
    hooks = list(callbacks or [])
    tracker = tracking_callback()
    if tracker is not None:
        hooks.append(tracker)
    result = Trainer(config, image_cache, callbacks=hooks, augment=_augment(preprocessing)).fit()
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
