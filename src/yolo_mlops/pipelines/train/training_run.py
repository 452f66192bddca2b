"""One training run of the ``train_model`` node, in a straight line (:func:`train`):

1. the initial weights: :func:`~yolo_mlops.ingestion.weights_cache.fetch_pretrained` (the
   run-start hook downloaded them already, so the file is found in the cache; torchrun workers
   fetch them the same way). A resumed run fetches nothing: its checkpoint holds the weights,
   the recipe (:func:`~yolo_mlops.yolo.train.resume.resumed_config`) and the record of the
   initial weights;
2. the processes: one here, or torchrun workers / a Kubeflow TrainJob (:mod:`.launch`);
3. the model folder: one run at a time (``run_guard.exclusive_save_dir``); a run its previous
   holder left RUNNING in MLflow is closed, a resumed run is linked to the one it continues;
4. training: the :class:`Trainer` in this process, given the configured ``training`` block and
   the weights file, or the workers; the checkpoints record the configured
   ``training.pretrained`` and the weights it named (``config["base_weights"]``);
5. the checkpoints: ``best`` without its resume state (like a released model).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from yolo_mlops.ingestion.weights_cache import base_weights_meta, fetch_pretrained
from yolo_mlops.pipelines.train import launch
from yolo_mlops.pipelines.train.callbacks import epoch_callbacks
from yolo_mlops.tracking import orphans
from yolo_mlops.yolo.data.augment import AugmentConfig
from yolo_mlops.yolo.io.checkpoint import read_checkpoint
from yolo_mlops.yolo.train import run_guard
from yolo_mlops.yolo.train.resume import resumed_config
from yolo_mlops.yolo.train.trainer import EpochCallback, TrainConfig, Trainer, TrainResult

logger = logging.getLogger(__name__)


def _link_runs(previous: Mapping[str, Any] | None, config: TrainConfig, save_dir: Path) -> None:
    """Close the MLflow run that left ``save_dir`` RUNNING; tag a resume with the run it resumes."""
    orphans.close_stale(previous, save_dir)
    resume = run_guard.resume_path(config.resume, save_dir)
    if resume is not None:
        orphans.link_resume(torch.load(resume, map_location="cpu", weights_only=True))


def _checkpoints(result: TrainResult) -> tuple[dict[str, Any], dict[str, Any]]:
    """(best, last) as the node returns them; ``best`` without resume state."""
    best = torch.load(result.best, map_location="cpu", weights_only=True)
    best["training"] = None
    return best, torch.load(result.last, map_location="cpu", weights_only=True)


def initial_state(config: TrainConfig) -> tuple[TrainConfig, Any, dict[str, Any]]:
    """(config, weights file or None, ``base_weights`` meta): fetched for a new run; for a
    resumed run the checkpoint's recipe and record, and nothing fetched."""
    resume = run_guard.resume_path(config.resume, Path(config.save_dir))
    if resume is None:
        weights = fetch_pretrained(config)
        return config, weights, base_weights_meta(weights)
    recorded = read_checkpoint(resume)["config"]
    config = resumed_config(config, recorded.get("train_args") or {})
    return config, None, {"base_weights": recorded.get("base_weights")}


def train(
    config: TrainConfig,
    cache: Any,
    augment: AugmentConfig,
    callbacks: Sequence[EpochCallback] = (),
) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame]:
    """Train (see the module docstring); (best checkpoint, last checkpoint, history table).

    ``callbacks`` run after every epoch of single-process training (workers log to MLflow
    themselves).
    """
    config, weights, weights_meta = initial_state(config)
    plan = launch.plan_launch(config, nodes=launch.requested_nodes())
    config = dataclasses.replace(config, device=plan.device)  # what each process trains with
    meta = orphans.checkpoint_meta()
    save_dir = Path(config.save_dir)
    with run_guard.exclusive_save_dir(save_dir, meta) as previous:
        _link_runs(previous, config, save_dir)
        if plan.distributed:
            cache_dir = getattr(cache, "root", None)
            result = launch.train_distributed(config, augment, cache_dir, plan)
        else:
            trainer = Trainer(
                config, cache, callbacks=epoch_callbacks(config.epochs, callbacks),
                augment=augment, checkpoint_meta=meta | weights_meta,
                pretrained_file=weights.path if weights is not None else None,
            )  # fmt: skip
            result = trainer.fit()
    logger.info(
        "training done: best fitness %.5f after %d epochs%s", result.best_fitness,
        len(result.history), " (early stop)" if result.stopped_early else "",
    )  # fmt: skip
    best, last = _checkpoints(result)
    return best, last, pd.DataFrame(result.history)
