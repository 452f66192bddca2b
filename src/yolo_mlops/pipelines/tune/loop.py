"""The trial loop every search process runs against the shared study (ask, train, tell).

A process claims a trial only while the study has fewer than ``tune.n_trials`` finished
(COMPLETE or PRUNED) plus running trials; the count and the ``ask`` happen under
:func:`~.study.claim_lock`, so N processes on one machine end the study with exactly
``n_trials`` finished trials. When every remaining slot is held by a running trial the process
waits: if that trial fails (or its process died and its heartbeat went stale) the slot frees and
a waiting process takes it. Failed trials (an exception, a tracking outage) are recorded as FAIL
with their reason and do not count; ``tune.max_failed_in_row`` failures in a row stop this
process with :class:`SearchFailedError` (the study stays resumable).
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from yolo_mlops.pipelines.tune import study as tune_study
from yolo_mlops.pipelines.tune.trial import RUN_ATTR, URI_ATTR, TrialContext, run_trial
from yolo_mlops.tracking import tune_runs
from yolo_mlops.yolo.train.interrupt import TrainingInterrupted

logger = logging.getLogger(__name__)

FAIL_ATTR, WORKER_ATTR = "fail_reason", "worker"
Objective = Callable[[optuna.Trial, TrialContext], float]


class SearchFailedError(RuntimeError):
    """Too many trials in a row failed in this process."""


class _Heartbeat:
    """Record the trial's heartbeat every ``interval_s`` seconds on a thread, while it runs."""

    def __init__(self, rdb: RDBStorage, trial_id: int, interval_s: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(rdb, trial_id, interval_s), name="optuna-heartbeat",
            daemon=True,
        )  # fmt: skip

    def _beat(self, rdb: RDBStorage, trial_id: int, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            rdb.record_heartbeat(trial_id)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def end_stale_run(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna's stale-trial callback: the killed trial's MLflow run is ended KILLED."""
    logger.warning("trial %d: its process stopped sending heartbeats; marked FAIL", trial.number)
    run_id, uri = trial.user_attrs.get(RUN_ATTR), trial.user_attrs.get(URI_ATTR)
    if run_id and uri:
        tune_runs.end_trial_run(uri, run_id, "STALE", {"optuna.fail_reason": "heartbeat lost"})


def _claim(study: optuna.Study, rdb: RDBStorage, ctx: TrialContext) -> optuna.Trial | bool:
    """A new trial, or ``True`` (the study is done) / ``False`` (wait: all slots are running)."""
    settings = ctx.settings
    with tune_study.claim_lock(rdb.url, ctx.work_dir), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental" and "heartbeat without optimize"
        optuna.storages.fail_stale_trials(study)
        counts = tune_study.counts(study)
        finished = counts["COMPLETE"] + counts["PRUNED"]
        if finished >= settings.n_trials:
            return True
        if finished + counts["RUNNING"] >= settings.n_trials:
            return False
        study.sampler = tune_study.build_sampler(settings.sampler, sum(counts.values()))
        trial = study.ask()
        rdb.record_heartbeat(trial._trial_id)  # Optuna's own loop reads the same private id
        return trial


def _finish(study: optuna.Study, trial: optuna.Trial, ctx: TrialContext, objective: Objective):
    """Run ``objective`` for ``trial`` and tell the study; returns the state told."""
    try:
        value = objective(trial, ctx)
        state, told = TrialState.COMPLETE, value
    except optuna.TrialPruned as pruned:
        logger.info("trial %d pruned: %s", trial.number, pruned)
        state, told = TrialState.PRUNED, None
    except (KeyboardInterrupt, TrainingInterrupted) as stop:
        _fail(study, trial, f"stopped: {type(stop).__name__}: {stop}")
        raise
    except Exception as error:  # a failed trial is recorded; the study goes on
        logger.exception("trial %d failed", trial.number)
        _fail(study, trial, f"{type(error).__name__}: {error}")
        return TrialState.FAIL
    study.tell(trial, told, state=state)
    _end_run(trial, state.name)
    return state


def _fail(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    trial.set_user_attr(FAIL_ATTR, reason[:2000])
    study.tell(trial, state=TrialState.FAIL)
    _end_run(trial, "FAIL", {"optuna.fail_reason": reason[:5000]})


def _end_run(trial: optuna.Trial, state: str, tags: dict | None = None) -> None:
    attrs = trial.user_attrs
    if attrs.get(RUN_ATTR) and attrs.get(URI_ATTR):
        tune_runs.end_trial_run(attrs[URI_ATTR], attrs[RUN_ATTR], state, tags or {})


def run_trials(
    rdb: RDBStorage, ctx: TrialContext, worker: str, objective: Objective | None = None
) -> dict[str, int]:
    """Run trials of ``ctx.settings.study_name`` until the study has ``n_trials`` finished.

    Args:
        rdb: the study's storage (with the heartbeat).
        ctx: the recipe, the image cache and where trials write.
        worker: a name for this process, kept on each of its trials (``worker`` user attribute).
        objective: the trial function (default :func:`~.trial.run_trial`).

    Returns:
        Trials this process ran, per final state name.

    Raises:
        SearchFailedError: ``tune.max_failed_in_row`` trials in a row failed here.
    """
    objective = objective or run_trial
    study = tune_study.open_study(ctx.settings, rdb, create=False)
    ran = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}
    failed_in_row = 0
    while True:
        trial = _claim(study, rdb, ctx)
        if trial is True:
            return ran
        if trial is False:
            time.sleep(min(ctx.settings.heartbeat_s, 5))
            continue
        trial.set_user_attr(WORKER_ATTR, worker)
        with _Heartbeat(rdb, trial._trial_id, ctx.settings.heartbeat_s):
            state = _finish(study, trial, ctx, objective)
        ran[state.name] += 1
        failed_in_row = failed_in_row + 1 if state == TrialState.FAIL else 0
        if failed_in_row >= ctx.settings.max_failed_in_row:
            raise SearchFailedError(
                f"{failed_in_row} trials in a row failed in worker {worker} (last: "
                f"{study.trials[trial.number].user_attrs.get(FAIL_ATTR)}); fix the cause, then "
                "continue with --params tune.resume=true (tune.max_failed_in_row)"
            )


def work_dir(settings_work_dir: str, study_name: str) -> Path:
    """``<tune.work_dir>/<study name>``: the trials' checkpoint folders."""
    return Path(settings_work_dir) / study_name
