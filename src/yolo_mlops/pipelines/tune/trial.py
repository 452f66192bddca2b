"""One trial: sample a recipe, train it for the trial budget, report every epoch, return its score.

The trainer calls :class:`EpochReporter` after every epoch (``Trainer(callbacks=...)``): it logs
the epoch's row to the trial's MLflow child run, reports the objective column to Optuna at
step = epoch (1-based) and raises ``optuna.TrialPruned`` when the pruner says so. The trial's
checkpoints are in ``<tune.work_dir>/<study>/trial_<number>/`` (``best.pt`` by fitness).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

from yolo_mlops.pipelines.train.training_run import initial_state
from yolo_mlops.pipelines.tune import space
from yolo_mlops.pipelines.tune.config import TuneParams
from yolo_mlops.tracking import tune_runs
from yolo_mlops.yolo.data.augment import AugmentConfig
from yolo_mlops.yolo.train.trainer import TrainConfig, Trainer

logger = logging.getLogger(__name__)

#: Trial user attributes written by :func:`run_trial`.
RUN_ATTR, URI_ATTR, DIR_ATTR, METRICS_ATTR = "mlflow_run_id", "mlflow_uri", "save_dir", "metrics"
#: The history columns kept for the best epoch (by fitness: the epoch of ``best.pt``).
KEPT_METRICS = ("metrics/mAP50", "metrics/mAP50-95", "metrics/precision", "metrics/recall",
                "fitness", "epoch")  # fmt: skip


@dataclass(frozen=True)
class Tracking:
    """Where the trials' child runs go: the store and the study's parent run."""

    uri: str
    parent_run_id: str


@dataclass(frozen=True)
class TrialContext:
    """What every trial of one process shares.

    Attributes:
        settings: the ``tune`` block.
        training, augment: the configured recipe the sampled values replace keys of.
        cache: the opened ``ImageCache`` (the image size comes from it).
        work_dir: ``<tune.work_dir>/<study name>``; each trial trains in ``trial_<number>``.
        tracking: the MLflow store and parent run, or ``None`` (untracked search).
    """

    settings: TuneParams
    training: TrainConfig
    augment: AugmentConfig
    cache: Any
    work_dir: Path
    tracking: Tracking | None = None


class EpochReporter:
    """The trainer's ``on_epoch_end``: log to the child run, report to Optuna, maybe prune."""

    def __init__(self, trial: optuna.Trial, ctx: TrialContext, run_id: str | None) -> None:
        self.trial, self.ctx, self.run_id = trial, ctx, run_id
        self.maximize = ctx.settings.direction == "maximize"
        self.best: float | None = None
        self.best_fitness = -math.inf
        self.kept: dict[str, float] = {}

    def __call__(self, epoch: int, row: dict[str, float]) -> None:
        if self.ctx.tracking is not None and self.run_id is not None:
            tune_runs.log_trial_epoch(self.ctx.tracking.uri, self.run_id, row, epoch)
        objective = self.ctx.settings.objective
        if objective not in row:
            raise KeyError(f"tune.objective={objective!r} is not a history column; one of "
                           f"{', '.join(sorted(row))}")  # fmt: skip
        value = float(row[objective])
        if self.best is None or (value > self.best if self.maximize else value < self.best):
            self.best = value
        if float(row.get("fitness", 0.0)) > self.best_fitness or not self.kept:
            self.best_fitness = float(row.get("fitness", 0.0))
            self.kept = {k: float(row[k]) for k in KEPT_METRICS if k in row}
            self.trial.set_user_attr(METRICS_ATTR, self.kept)
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"{objective} {value:.5f} at epoch {epoch}")


def _start_run(trial: optuna.Trial, ctx: TrialContext, values: dict[str, Any]) -> str | None:
    """The trial's MLflow child run (``None`` untracked); its id is a trial user attribute."""
    if ctx.tracking is None:
        return None
    name = f"{ctx.settings.study_name}-trial-{trial.number:03d}"
    tags = {"optuna.study": ctx.settings.study_name, "optuna.trial": trial.number}
    params = {f"{block}.{key}": v for block, keys in values.items() for key, v in keys.items()}
    params |= {"tune.epochs": ctx.settings.epochs, "tune.objective": ctx.settings.objective}
    run_id = tune_runs.start_trial_run(ctx.tracking.uri, ctx.tracking.parent_run_id, name, tags,
                                       params)  # fmt: skip
    trial.set_user_attr(RUN_ATTR, run_id)
    trial.set_user_attr(URI_ATTR, ctx.tracking.uri)
    return run_id


def run_trial(trial: optuna.Trial, ctx: TrialContext) -> float:
    """Train one sampled recipe; returns the best value of ``tune.objective`` over its epochs.

    Raises:
        optuna.TrialPruned: the pruner stopped it (``last.pt``/``best.pt`` stay in its folder).
        TrialTrackingError: its MLflow run could not be written (the trial fails).
    """
    values = space.sample(trial, ctx.settings.space)
    save_dir = ctx.work_dir / f"trial_{trial.number:04d}"
    trial.set_user_attr(DIR_ATTR, str(save_dir))
    config, augment = space.trial_configs(
        ctx.training, ctx.augment, values, (ctx.settings.epochs, save_dir)
    )
    run_id = _start_run(trial, ctx, values)
    config, weights, weights_meta = initial_state(config)
    meta = dict(weights_meta)
    if ctx.tracking is not None and run_id is not None:
        meta["tracking"] = {"run_id": run_id, "tracking_uri": ctx.tracking.uri}
    logger.info("trial %d: %s", trial.number, values)
    reporter = EpochReporter(trial, ctx, run_id)
    Trainer(
        config, ctx.cache, callbacks=[reporter], augment=augment, checkpoint_meta=meta,
        pretrained_file=weights.path if weights is not None else None,
    ).fit()  # fmt: skip
    if reporter.best is None:
        raise RuntimeError(f"trial {trial.number} trained no epoch")
    return reporter.best


def best_checkpoint(save_dir: str | Path) -> dict[str, Any]:
    """The trial's ``best.pt`` (in ``save_dir``) without its resume state, as the train node
    returns ``best``: the form a registered model has."""
    checkpoint = torch.load(Path(save_dir) / "best.pt", map_location="cpu", weights_only=True)
    checkpoint["training"] = None
    return checkpoint
