"""The ``tune`` parameter block (``conf/base/parameters_tune.yml``) as typed dataclasses.

The search space names keys of the ``training`` block and of ``preprocessing.augment``; each key
gets one :class:`Dimension` (a float or int range, optionally log-scaled, or a list of choices).
Keys that decide where and how long a trial runs (``epochs``, ``save_dir``, ``resume``,
``device``...) are set by the search itself and may not be searched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from yolo_mlops.pipelines.params import ParameterError, parse_params
from yolo_mlops.yolo.data.augment import AugmentConfig
from yolo_mlops.yolo.train.config import TrainConfig

#: The blocks a search space may name, and the dataclass whose keys each one searches.
SPACE_BLOCKS: dict[str, type] = {"training": TrainConfig, "augment": AugmentConfig}

#: ``training`` keys the search owns (budget, folders, processes): never searched.
FIXED_TRAINING_KEYS = frozenset(
    {"epochs", "save_dir", "resume", "device", "nproc", "workers", "threads", "progress",
     "pretrained", "pretrained_sha256", "weights_base_url", "train_split", "val_split", "val",
     "dist_timeout_s", "scale"}
)  # fmt: skip


@dataclass(frozen=True)
class Dimension:
    """One searched key.

    Attributes:
        type: ``float``, ``int`` (ranges ``low``..``high``, both included) or ``categorical``.
        low, high: the range of a float or int key.
        log: sample the range on a log scale (learning rates, weight decay).
        step: grid step of the range (``None``: continuous floats, unit step for ints).
        choices: the values of a categorical key (strings, numbers or booleans).
    """

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    def __post_init__(self) -> None:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical dimension needs a non-empty `choices` list")
            return
        if self.low is None or self.high is None or self.low >= self.high:
            raise ValueError(
                f"a {self.type} dimension needs low < high (got {self.low}, {self.high})"
            )
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("a log dimension needs low > 0 and no step")


@dataclass(frozen=True)
class SamplerParams:
    """How trials are proposed: ``tpe`` (Bayesian, after ``n_startup_trials`` random ones) or
    ``random``; ``seed`` makes a one-worker search repeatable."""

    kind: Literal["tpe", "random"] = "tpe"
    seed: int = 0
    n_startup_trials: int = 8


@dataclass(frozen=True)
class PrunerParams:
    """When a trial is stopped early on its per-epoch objective.

    ``median``: below the median of earlier trials at the same epoch, once ``n_startup_trials``
    trials finished and after ``n_warmup_epochs`` epochs. ``halving``: successive halving, rungs
    at ``min_epochs`` × ``reduction_factor``^k epochs, keeping the best 1/``reduction_factor``.
    ``none``: every trial runs its full budget.
    """

    kind: Literal["median", "halving", "none"] = "median"
    n_startup_trials: int = 4
    n_warmup_epochs: int = 10
    min_epochs: int = 5
    reduction_factor: int = 3


@dataclass(frozen=True)
class TuneParams:
    """The ``tune`` block; see ``conf/base/parameters_tune.yml`` for one comment per key."""

    study_name: str = "yolo11-tune"
    n_trials: int = 16
    epochs: int = 30
    objective: str = "metrics/mAP50-95"
    direction: Literal["maximize", "minimize"] = "maximize"
    space: dict[str, Any] = field(default_factory=dict)
    baseline: bool = True
    sampler: SamplerParams = field(default_factory=SamplerParams)
    pruner: PrunerParams = field(default_factory=PrunerParams)
    storage: str | None = None
    resume: bool = False
    workers: int = 1
    heartbeat_s: int = 10
    grace_s: int = 60
    max_failed_in_row: int = 3
    work_dir: str = "data/06_models/tune"
    register: bool = True

    def __post_init__(self) -> None:
        if self.n_trials < 1 or self.epochs < 1 or self.workers < 1:
            raise ValueError("tune.n_trials, tune.epochs and tune.workers must be >= 1")
        if self.heartbeat_s < 1 or self.grace_s <= self.heartbeat_s:
            raise ValueError("tune.heartbeat_s must be >= 1 and tune.grace_s > tune.heartbeat_s")
        if self.max_failed_in_row < 1:
            raise ValueError("tune.max_failed_in_row must be >= 1")
        parse_space(self.space)


def parse_space(space: Mapping[str, Any] | None) -> dict[str, dict[str, Dimension]]:
    """``{block: {key: Dimension}}`` from the ``tune.space`` mapping.

    Raises:
        ParameterError: an unknown block, a key its block does not have, a key the search owns,
            or a malformed dimension; the message names ``tune.space.<block>.<key>``.
    """
    parsed: dict[str, dict[str, Dimension]] = {}
    for block, keys in (space or {}).items():
        if block not in SPACE_BLOCKS:
            raise ParameterError(
                f"tune.space.{block}: unknown block; use {' or '.join(SPACE_BLOCKS)} "
                "(conf/*/parameters_tune.yml)"
            )
        known = {f.name for f in dataclasses.fields(SPACE_BLOCKS[block])}
        parsed[block] = {}
        for key, spec in dict(keys or {}).items():
            where = f"tune.space.{block}.{key}"
            if key not in known:
                raise ParameterError(f"{where}: {block} has no key {key!r}")
            if block == "training" and key in FIXED_TRAINING_KEYS:
                raise ParameterError(f"{where}: set by the search itself, it cannot be searched")
            parsed[block][key] = parse_params(Dimension, spec, where)
    return parsed
