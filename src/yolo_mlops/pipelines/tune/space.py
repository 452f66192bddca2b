"""A trial's recipe: sample the search space, build the trial's configs, write the best one back.

Optuna parameter names are dotted: ``training.lr0``, ``augment.mosaic``. The best trial's
values become a Kedro parameters mapping (``training: {...}``, ``preprocessing: {augment: {...}}``)
that loads with ``--params`` or as a file in ``conf/``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna

from yolo_mlops.pipelines.tune.config import Dimension, TuneParams, parse_space
from yolo_mlops.yolo.data.augment import AugmentConfig
from yolo_mlops.yolo.train.config import TrainConfig


def suggest(trial: optuna.Trial, name: str, dimension: Dimension) -> Any:
    """One value of ``dimension`` for ``trial``, recorded under ``name``."""
    if dimension.type == "categorical":
        return trial.suggest_categorical(name, list(dimension.choices or []))
    assert dimension.low is not None and dimension.high is not None
    if dimension.type == "int":
        step = int(dimension.step or 1)
        return trial.suggest_int(name, int(dimension.low), int(dimension.high), step=step,
                                 log=dimension.log)  # fmt: skip
    return trial.suggest_float(name, dimension.low, dimension.high, step=dimension.step,
                               log=dimension.log)  # fmt: skip


def sample(trial: optuna.Trial, space: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"training": {...}, "augment": {...}}``: a value for every key of the search space."""
    return {
        block: {key: suggest(trial, f"{block}.{key}", dim) for key, dim in keys.items()}
        for block, keys in parse_space(space).items()
    }


def split_params(params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Optuna's flat ``{"training.lr0": v}`` as ``{"training": {"lr0": v}}``."""
    blocks: dict[str, dict[str, Any]] = {}
    for name, value in params.items():
        block, _, key = name.partition(".")
        blocks.setdefault(block, {})[key] = value
    return blocks


def baseline_params(
    settings: TuneParams, training: TrainConfig, augment: AugmentConfig
) -> dict[str, Any]:
    """The configured recipe's value of every searched key (the first trial, when enqueued)."""
    base = {"training": training, "augment": augment}
    return {
        f"{block}.{key}": getattr(base[block], key)
        for block, keys in parse_space(settings.space).items()
        for key in keys
    }


def trial_configs(
    training: TrainConfig,
    augment: AugmentConfig,
    values: Mapping[str, Mapping[str, Any]],
    budget: tuple[int, Path],
) -> tuple[TrainConfig, AugmentConfig]:
    """The trial's configs: the sampled ``values`` over the configured ones, trained for
    ``budget = (epochs, save_dir)`` from the configured weights, never resumed."""
    epochs, save_dir = budget
    config = dataclasses.replace(
        training, **dict(values.get("training") or {}), epochs=epochs, save_dir=str(save_dir),
        resume=False, nproc=1,
    )  # fmt: skip
    return config, dataclasses.replace(augment, **dict(values.get("augment") or {}))


def as_kedro_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's flat params as Kedro parameters: ``training`` and ``preprocessing.augment``."""
    blocks = split_params(params)
    result: dict[str, Any] = {}
    if blocks.get("training"):
        result["training"] = blocks["training"]
    if blocks.get("augment"):
        result["preprocessing"] = {"augment": blocks["augment"]}
    return result
