"""The ``tune`` pipeline's nodes: start the study, run its trials, report it, register the best.

Three steps so that Kubeflow can run the middle one as parallel tasks against one study
(:mod:`yolo_mlops.kubeflow.tune`); locally ``kedro run --pipelines tune`` runs all four nodes.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from yolo_mlops.ingestion.paths import project_root
from yolo_mlops.pipelines.params import parse_params
from yolo_mlops.pipelines.register.nodes import RegisterParams, registration
from yolo_mlops.pipelines.tune import report, search, trial
from yolo_mlops.pipelines.tune import study as tune_study
from yolo_mlops.pipelines.tune.config import TuneParams
from yolo_mlops.tracking import run as tracking_run
from yolo_mlops.tracking import tune_runs

logger = logging.getLogger(__name__)


def _storage(settings: TuneParams) -> str:
    """``tune.storage``, or the SQLite file beside the MLflow store this run logs into."""
    run = tracking_run.current()
    uri = run.uri if run is not None else None
    return settings.storage or tune_study.default_storage(uri, project_root())


def _spec(tune: dict, training: dict, augment: dict | None, parent: str | None = None):
    """The search spec: the study's storage, the blocks and the MLflow parent run."""
    run = tracking_run.current()
    tracking = {"uri": run.uri, "parent_run_id": parent or run.run_id} if run else None
    storage = _storage(parse_params(TuneParams, tune, "tune"))
    return search.SearchSpec(storage, dict(tune), dict(training or {}), dict(augment or {}),
                             tracking=tracking)  # fmt: skip


def create_study(tune: dict, training: dict, augment: dict | None) -> dict[str, Any]:
    """Create the study named ``tune.study_name`` (or resume it with ``tune.resume``).

    Returns:
        The study record (``data/07_model_output/tune/study.json``): name, storage (without
        its password), parent run, trial counts.
    """
    return search.start_study(_spec(tune, training, augment))


def run_trials(
    image_cache: Any, study: dict[str, Any], tune: dict, training: dict, augment: dict | None
) -> dict[str, Any]:
    """Run trials until the study has ``tune.n_trials`` finished ones (``tune.workers``
    processes here; one per parallel task on Kubeflow). Returns the trial counts per state."""
    spec = _spec(tune, training, augment, parent=study.get("parent_run_id"))
    return {"study_name": study["study_name"], "counts": search.run_search(spec, image_cache)}


def summarize_study(
    study: dict[str, Any], trials: dict[str, Any], tune: dict, training: dict, preprocessing: dict
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any], Figure, Figure, Figure]:
    """The trials table, the best recipe as Kedro parameters, the summary and the three plots.

    ``trials`` only orders this node after the trials. The plots also go to the study's parent
    run when it is not this pipeline's run (a resumed search).
    """
    settings = parse_params(TuneParams, tune, "tune")
    rdb = tune_study.storage(_storage(settings), settings)
    optuna_study = tune_study.open_study(settings, rdb, create=False)
    best = report.best_trial(optuna_study)
    if best is None:
        raise RuntimeError(f"study {settings.study_name!r} has no completed trial: nothing to "
                           f"report ({trials.get('counts')})")  # fmt: skip
    document = report.best_params_document(best, training, preprocessing)
    summary = report.summary(optuna_study, best, study)
    logger.info("best trial %d: %s = %.5f, %s", best.number, settings.objective, best.value,
                best.params)  # fmt: skip
    return (report.trials_table(optuna_study), document, summary,
            *report.study_plots(optuna_study))  # fmt: skip


def register_best_trial(summary: dict[str, Any], tune: dict, register: dict) -> dict[str, Any]:
    """Register the best trial's ``best.pt`` from its child run through the promotion gate
    (``register`` block; served by the torch backend: the search exports no ONNX file).

    Returns:
        The registration record, or ``{"status": "skipped", "reason": ...}``.
    """
    settings = parse_params(TuneParams, tune, "tune")
    best = summary.get("best") or {}
    run = tracking_run.current()
    if not settings.register or run is None or not best.get("mlflow_run_id"):
        reason = "tune.register is false" if not settings.register else "untracked search"
        return {"status": "skipped", "reason": reason}
    checkpoint = trial.best_checkpoint(best["save_dir"])
    metrics = {key.removeprefix("metrics/"): value for key, value in best["metrics"].items()}
    gate = dataclasses.replace(
        registration(parse_params(RegisterParams, register, "register")), serving_backend="torch"
    )
    trial_run = tracking_run.TrackedRun(run.uri, best["mlflow_run_id"])
    return tune_runs.register_trial_model(trial_run, checkpoint, metrics, gate, project_root())
