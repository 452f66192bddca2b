"""The Optuna study: where it is stored, how it is created or resumed, its sampler and pruner.

The study lives in a relational database (Optuna's ``RDBStorage``) so it outlives every process:
by default an SQLite file ``optuna.db`` beside the embedded MLflow store (``mlflow.db``); any
SQLAlchemy URL (``postgresql://...``) where several machines or Kubeflow pods share it. Trials
send a heartbeat every ``tune.heartbeat_s`` seconds; a RUNNING trial whose heartbeat is older
than ``tune.grace_s`` (its process was killed) is marked FAIL by the next process that looks.

A study name is used once: without ``tune.resume`` an existing study of that name is an error
(:class:`StudyExistsError`), so a second search never silently mixes its trials into the first.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from yolo_mlops.pipelines.tune.config import PrunerParams, SamplerParams, TuneParams

logger = logging.getLogger(__name__)

DEFAULT_DB = "optuna.db"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
#: Study user attributes: the MLflow run that is the study's parent, and the search settings.
PARENT_RUN_ATTR = "mlflow_parent_run_id"
SETTINGS_ATTR = "settings"

StaleCallback = Callable[[optuna.Study, FrozenTrial], None]


class StudyExistsError(RuntimeError):
    """A new search names a study that already exists in the storage."""


def default_storage(tracking_uri: str | None, project_path: Path) -> str:
    """``sqlite:///<folder of mlflow.db>/optuna.db`` for an embedded SQLite MLflow store, else
    ``sqlite:///<project>/optuna.db``."""
    folder = Path(project_path).resolve()
    if tracking_uri and tracking_uri.startswith("sqlite:///"):
        folder = Path(tracking_uri[len("sqlite:///") :]).parent
    return f"sqlite:///{(folder / DEFAULT_DB).as_posix()}"


def storage(url: str, settings: TuneParams, on_stale: StaleCallback | None = None) -> RDBStorage:
    """Optuna's RDB storage at ``url`` with the heartbeat (SQLite waits up to 60 s on a lock)."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(
            url, heartbeat_interval=settings.heartbeat_s, grace_period=settings.grace_s,
            heartbeat_stale_trial_callback=on_stale, **kwargs,
        )  # fmt: skip


def build_pruner(settings: PrunerParams) -> optuna.pruners.BasePruner:
    """The pruner of ``tune.pruner`` (steps are 1-based epochs)."""
    if settings.kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=settings.n_startup_trials, n_warmup_steps=settings.n_warmup_epochs
        )
    if settings.kind == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=settings.min_epochs, reduction_factor=settings.reduction_factor
        )
    return optuna.pruners.NopPruner()


def build_sampler(settings: SamplerParams, trial_number: int) -> optuna.samplers.BaseSampler:
    """The sampler for the trial numbered ``trial_number``: seeded from ``(seed, number)``, so
    the proposals depend on the study's history, not on which process asks."""
    seed = int(np.random.SeedSequence([settings.seed, trial_number]).generate_state(1)[0])
    if settings.kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=settings.n_startup_trials, constant_liar=True
    )


def open_study(settings: TuneParams, rdb: RDBStorage, *, create: bool) -> optuna.Study:
    """Create the study (``create``: a new search) or load it (a resume, a trial worker).

    Raises:
        StudyExistsError: ``create`` and the study exists, unless ``tune.resume`` is true.
        KeyError: not ``create`` and no such study (a worker started before the study).
    """
    pruner, sampler = build_pruner(settings.pruner), build_sampler(settings.sampler, 0)
    name = settings.study_name
    exists = name in optuna.study.get_all_study_names(rdb)
    if exists and create and not settings.resume:
        raise StudyExistsError(
            f"study {name!r} already exists in {rdb.url}: continue it with "
            f"--params tune.resume=true, or start a new one under another tune.study_name"
        )
    if exists:
        return optuna.load_study(study_name=name, storage=rdb, sampler=sampler, pruner=pruner)
    if not create:
        raise KeyError(f"no study {name!r} in {rdb.url}")
    if settings.resume:
        logger.info("tune.resume: study %r does not exist yet; starting it", name)
    return optuna.create_study(
        storage=rdb, study_name=name, direction=settings.direction, sampler=sampler, pruner=pruner
    )


def counts(study: optuna.Study) -> dict[str, int]:
    """Trials per state name (``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``, ``WAITING``)."""
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    return {state.name: states.count(state.name) for state in TrialState}


@contextlib.contextmanager
def claim_lock(url: str, fallback_dir: Path) -> Iterator[None]:
    """Serialise "count the trials, then ask for one" between the processes of one machine.

    An exclusive ``flock`` on ``<db>.claim.lock`` beside an SQLite file, else on a file in
    ``fallback_dir`` named after the storage URL (PostgreSQL shared by several machines: each
    machine serialises its own workers; see docs/tune.md for the bound across machines).
    """
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :] + ".claim.lock")
    else:
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        path = Path(fallback_dir) / f"storage-{digest}.claim.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
