"""Kedro node of the ``training`` pipeline: a thin adapter over :mod:`.training_run`."""

from __future__ import annotations

from typing import Any

import pandas as pd

from yolo_mlops.pipelines.params import parse_params
from yolo_mlops.pipelines.train import training_run
from yolo_mlops.yolo.data.augment import AugmentConfig
from yolo_mlops.yolo.train.trainer import EpochCallback, TrainConfig

BLOCK = "training"


def train_model(
    image_cache: Any,
    parameters: dict[str, Any],
    augment: dict[str, Any] | None = None,
    callbacks: list[EpochCallback] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    """Train on ``image_cache`` with the ``training`` block and ``preprocessing.augment``.

    More than one process (``training.device: 0,1``, ``training.nproc: 2``, or a Kubeflow
    TrainJob) runs torchrun workers instead (see ``launch.py``; ``callbacks`` then do not run:
    rank 0 logs the epochs to MLflow itself). ``training.pretrained`` may name an official
    release (``yolo11n.pt``) or a URL: the trainer gets the file from the weights cache.

    Returns:
        (best checkpoint dict, last checkpoint dict, per-epoch history table). The best
        checkpoint is stripped of its resume state (``training = None``, like a released model);
        ``last`` keeps it so ``training.resume`` can continue the run. Both record the weights
        used under ``config["base_weights"]`` (name, url, sha256, size...; None from scratch).
    """
    config = parse_params(TrainConfig, parameters, BLOCK)
    augment_config = parse_params(AugmentConfig, augment, "preprocessing.augment")
    return training_run.train(config, image_cache, augment_config, callbacks or ())
