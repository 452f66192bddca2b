"""MLflow runs of a hyperparameter search: one parent run per study, one child run per trial.

A trial's own logging is strict (:class:`TrialTrackingError`): a trial whose curves cannot be
recorded is failed, so the study never keeps a result it cannot show, while the other trials go
on. The study's bookkeeping (ending a trial's run, tags, plots) never raises: it is logged as a
warning, like every other tracking call of the pipelines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric

from yolo_mlops.tracking import registry, store
from yolo_mlops.tracking.config import is_http
from yolo_mlops.tracking.params_flatten import sanitize_key
from yolo_mlops.tracking.run import TrackedRun

logger = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
STATE_TAG = "optuna.state"
_PROBE_TIMEOUT_S = 2.0
#: How a trial's state ends its MLflow run.
RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED", "STALE": "KILLED"}


class TrialTrackingError(RuntimeError):
    """A trial could not write to the tracking store (the trial fails, the study goes on)."""


def _client(uri: str) -> MlflowClient:
    """A client for ``uri``; an HTTP server must answer ``/health`` within 2 s (no retry loop)."""
    if is_http(uri) and (reason := store.probe(uri, _PROBE_TIMEOUT_S)):
        raise TrialTrackingError(f"tracking server unreachable: {reason}")
    return MlflowClient(tracking_uri=uri)


def start_trial_run(
    uri: str, parent_run_id: str, name: str, tags: Mapping[str, Any], params: Mapping[str, Any]
) -> str:
    """Create the trial's child run under ``parent_run_id`` (same experiment); returns its id.

    Raises:
        TrialTrackingError: the store refused or could not be reached.
    """
    try:
        client = _client(uri)
        experiment_id = client.get_run(parent_run_id).info.experiment_id
        all_tags = {PARENT_TAG: parent_run_id, STATE_TAG: "RUNNING", **tags}
        created = store.create_run(client, experiment_id, name,
                                   {k: str(v) for k, v in all_tags.items()})  # fmt: skip
        run_id = created.info.run_id
        flat = {sanitize_key(k): str(v)[:6000] for k, v in params.items()}
        store.log_batch(client, run_id, params=flat)
    except TrialTrackingError:
        raise
    except Exception as error:
        raise TrialTrackingError(f"could not start the trial's MLflow run: {error}") from error
    return run_id


def log_trial_epoch(uri: str, run_id: str, row: Mapping[str, Any], step: int) -> None:
    """One epoch's numeric values on the trial's run (``step`` = epoch).

    Raises:
        TrialTrackingError: the store refused or could not be reached.
    """
    now = int(time.time() * 1000)
    metrics = [
        Metric(sanitize_key(key), float(value), now, int(step))
        for key, value in row.items()
        if key != "epoch" and isinstance(value, (int, float))
    ]
    try:
        store.log_batch(_client(uri), run_id, metrics=metrics)
    except TrialTrackingError:
        raise
    except Exception as error:
        raise TrialTrackingError(f"could not log epoch {step}: {error}") from error


def end_trial_run(uri: str, run_id: str, state: str, tags: Mapping[str, Any] = ()) -> bool:
    """Tag the trial's run with its Optuna ``state`` and end it (:data:`RUN_STATUS`); a run
    already ended is left as it is. Never raises; returns whether the store answered."""
    try:
        client = _client(uri)
        store.log_batch(client, run_id, tags={STATE_TAG: state, **dict(tags)})
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, RUN_STATUS.get(state, "FAILED"))
        return True
    except Exception as error:
        logger.warning("MLflow: could not end trial run %s as %s (%s)", run_id, state, error)
        return False


def set_run_tags(uri: str, run_id: str, tags: Mapping[str, Any]) -> None:
    """Set tags on any run of the store; never raises."""
    try:
        store.log_batch(_client(uri), run_id, tags=tags)
    except Exception as error:
        logger.warning("MLflow: could not tag run %s (%s)", run_id, error)


def log_files(uri: str, run_id: str, files: Iterable[Path], artifact_path: str) -> None:
    """Upload existing local ``files`` to ``run_id`` under ``artifact_path``; never raises."""
    try:
        client = _client(uri)
        for path in files:
            if Path(path).is_file():
                client.log_artifact(run_id, str(path), artifact_path=artifact_path)
    except Exception as error:
        logger.warning("MLflow: could not upload the study's files to %s (%s)", run_id, error)


def register_trial_model(
    run: TrackedRun,
    checkpoint: Mapping[str, Any],
    metrics: Mapping[str, Any],
    registration: registry.Registration,
    project_path: Path,
) -> dict[str, Any]:
    """Log and register the best trial's checkpoint from its own ``run`` (the trial's child
    run), through the registry's normal gate (:func:`.registry.log_and_register`)."""
    return registry.log_and_register(run, checkpoint, metrics, registration, project_path)
