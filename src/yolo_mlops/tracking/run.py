"""The MLflow run of one pipeline execution: start or join, log safely, end.

One run per ``kedro run``. The hook calls :func:`start_or_join` before the pipeline and
:func:`end` after it. The run id and the tracking URI are exported as ``MLFLOW_RUN_ID`` and
``MLFLOW_TRACKING_URI`` for the run's duration, so nodes in other threads, ParallelRunner
workers, subprocesses and Kubeflow tasks (which get the variables from the pipeline) log into
the same run: :func:`current` finds it from the environment.

Every logging call goes through :func:`_safely`: a tracking failure is logged as a warning and
never stops the pipeline (the trained model is already in ``data/06_models``). For HTTP stores a
quick ``/health`` probe runs first, so a server that went away costs a timeout, not MLflow's
multi-minute retry loop; after such a failure this process stops calling the server.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from yolo_mlops.tracking import store, store_lock
from yolo_mlops.tracking.config import (
    RUN_ID_ENV,
    TRACKING_URI_ENV,
    TrackingParams,
    artifact_location,
    is_http,
    resolve_experiment,
    resolve_tracking_uri,
)
from yolo_mlops.tracking.params_flatten import sanitize_key

logger = logging.getLogger(__name__)
T = TypeVar("T")
_PROBE_TIMEOUT_S = 2.0


class TrackingUnavailableError(RuntimeError):
    """The tracking store cannot be reached and ``tracking.on_unreachable`` is ``fail``."""


@dataclass
class TrackedRun:
    """The run this process logs into.

    Attributes:
        uri: tracking (and registry) URI of the store holding the run.
        run_id: MLflow run id.
        owned: True when this process created the run (then it also ends it).
        on_unreachable: the policy for tracking failures (``fail`` or ``warn``).
        previous_env: environment values replaced while the run is active (restored at end).
    """

    uri: str
    run_id: str
    owned: bool = False
    on_unreachable: str = "warn"
    previous_env: dict[str, str | None] = field(default_factory=dict)
    broken: bool = False
    broken_reason: str | None = None  # why tracking was lost mid-run (see lost_reason)

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.uri)


@dataclass
class _ProcessState:
    """This process's tracking state (the hook's run, or why tracking is off)."""

    active: TrackedRun | None = None
    disabled_reason: str | None = None  # set when tracking is off for this pipeline run
    lock: threading.Lock = field(default_factory=threading.Lock)


_state = _ProcessState()


def current() -> TrackedRun | None:
    """The run to log into, or ``None`` (tracking off, no run anywhere, or its server was lost
    mid-run: see :func:`pipeline_run`)."""
    run = pipeline_run()
    return None if run is not None and run.broken else run


def pipeline_run() -> TrackedRun | None:
    """The run this pipeline execution belongs to, even after it lost its server mid-run.

    Order: the run started or joined by the hook in this process; else ``$MLFLOW_RUN_ID`` with
    ``$MLFLOW_TRACKING_URI`` (a child process or task of a tracked pipeline). Unlike
    :func:`current` it stays the run once the server was lost: the checkpoints name it, so the
    recovery command registers the model there and completes it.
    """
    if _state.disabled_reason is not None:
        return None
    if _state.active is not None:
        return _state.active
    run_id = os.environ.get(RUN_ID_ENV)
    if run_id:
        import mlflow

        return TrackedRun(uri=mlflow.get_tracking_uri(), run_id=run_id)
    return None


def lost_reason() -> str | None:
    """Why the pipeline's run lost its tracking server mid-run, or ``None`` when it did not."""
    run = _state.active
    return run.broken_reason if run is not None and run.broken else None


def current_run_id() -> str | None:
    """The id of the run this process logs into, or ``None``."""
    run = current()
    return run.run_id if run else None


def _safely(run: TrackedRun, what: str, call: Callable[[MlflowClient], T]) -> T | None:
    """Run one tracking call; on failure log a warning and return ``None`` (never raises)."""
    if run.broken:
        return None
    if is_http(run.uri) and (reason := store.probe(run.uri, _PROBE_TIMEOUT_S)):
        run.broken, run.broken_reason = True, f"{what}: {reason}"
        logger.warning(
            "MLflow: %s skipped, server unreachable (%s); tracking stops here", what, reason
        )
        return None
    try:
        return call(run.client)
    except Exception as error:
        # Never raise once the pipeline runs: a tracking hiccup must not kill training.
        logger.warning("MLflow: %s failed (%s: %s); continuing", what, type(error).__name__, error)
        return None


def _export_env(run: TrackedRun) -> None:
    for name, value in ((RUN_ID_ENV, run.run_id), (TRACKING_URI_ENV, run.uri)):
        run.previous_env[name] = os.environ.get(name)
        os.environ[name] = value


def _restore_env(run: TrackedRun) -> None:
    for name, value in run.previous_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _unreachable(params: TrackingParams, reason: str) -> None:
    if params.on_unreachable == "fail":
        raise TrackingUnavailableError(
            f"MLflow tracking store is unreachable: {reason}. Start the server, point "
            f"MLFLOW_TRACKING_URI (or tracking.uri) at a reachable store, or set "
            f"tracking.on_unreachable: warn to train untracked."
        )
    _state.disabled_reason = reason
    logger.warning(
        "MLflow tracking store is unreachable (%s): this pipeline run continues UNTRACKED "
        "(tracking.on_unreachable: warn). Register the model later with "
        "`kedro run --pipelines register`.",
        reason,
    )


def start_or_join(
    params: TrackingParams, project_path: Path, run_name: str, tags: Mapping[str, str]
) -> TrackedRun | None:
    """Start the pipeline's run, or join the one that already exists.

    Joins, in order: an active fluent run of this process (``mlflow.start_run`` by the caller),
    then ``$MLFLOW_RUN_ID``; otherwise creates a run in the configured experiment. Exports the
    run id and URI to the environment until :func:`end`.

    Returns:
        The run, or ``None`` when tracking is disabled or unreachable under ``warn``.

    Raises:
        TrackingUnavailableError: the store is unreachable and ``on_unreachable`` is ``fail``.
    """
    with _state.lock:
        _state.active, _state.disabled_reason = None, None
        if not params.enabled:
            _state.disabled_reason = "tracking.enabled is false"
            logger.info("MLflow tracking disabled (tracking.enabled: false)")
            return None
        uri, run_id = _run_to_join(params, project_path)
        with store_lock.creation_lock(uri):  # two runs must not create mlflow.db at once
            reason = store.probe(uri, params.health_timeout_s)
        if reason:
            _unreachable(params, reason)
            return None
        try:
            if run_id:
                run = _join(uri, run_id, params)
            else:
                run = _create(uri, params, project_path, run_name=run_name, tags=tags)
        except MlflowException as error:
            _unreachable(params, f"{type(error).__name__}: {error}")
            return None
        if not run.owned and tags:
            _safely(run, "set tags", lambda c: store.log_batch(c, run.run_id, tags=tags))
        _export_env(run)
        _state.active = run
        return run


def _run_to_join(params: TrackingParams, project_path: Path) -> tuple[str, str | None]:
    """The store's URI and the id of the run to join (``None``: start one)."""
    import mlflow

    fluent = mlflow.active_run()
    if fluent is not None:
        return mlflow.get_tracking_uri(), fluent.info.run_id
    return resolve_tracking_uri(params, project_path), os.environ.get(RUN_ID_ENV)


def _join(uri: str, run_id: str, params: TrackingParams) -> TrackedRun:
    MlflowClient(tracking_uri=uri).get_run(run_id)  # must exist in this store
    logger.info("MLflow: joining existing run %s at %s", run_id, uri)
    return TrackedRun(uri, run_id, owned=False, on_unreachable=params.on_unreachable)


def _create(
    uri: str, params: TrackingParams, project_path: Path, *, run_name: str, tags: Mapping[str, str]
) -> TrackedRun:
    client = MlflowClient(tracking_uri=uri)
    location = artifact_location(uri, params, project_path)
    experiment_id = store.experiment_id(client, resolve_experiment(params), location)
    created = store.create_run(client, experiment_id, run_name, tags)
    logger.info("MLflow: started run %s (%s) at %s", created.info.run_id, run_name, uri)
    return TrackedRun(uri, created.info.run_id, owned=True, on_unreachable=params.on_unreachable)


def end(status: str | None = "FINISHED") -> None:
    """End the pipeline's run (only if this process created it) and restore the environment.

    ``status=None`` only detaches: the run stays RUNNING for other processes to join and to
    end with :func:`terminate` (a Kubeflow execution's shared run).
    """
    with _state.lock:
        run, _state.active, _state.disabled_reason = _state.active, None, None
    if run is None:
        return
    _restore_env(run)
    if run.owned and status is not None:
        _safely(run, f"end run as {status}", lambda c: c.set_terminated(run.run_id, status))


TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")


def terminate(run_id: str, status: str, params: TrackingParams, project_path: Path) -> bool:
    """Set the terminal status of a run created elsewhere (e.g. by another Kubeflow task).

    The store is the one :func:`start_or_join` would use (``$MLFLOW_TRACKING_URI``, then
    ``params.uri``, then the project's embedded store). ``FINISHED`` never overwrites a run
    that is already FAILED or KILLED (read first, then set: not atomic). Never raises: an
    unreachable store or an unknown run is logged as a warning.

    Args:
        run_id: MLflow run id.
        status: ``FINISHED``, ``FAILED`` or ``KILLED``.
        params: the project's ``tracking`` block.
        project_path: the Kedro project root (for the embedded default store).

    Returns:
        True when the status was set; False when tracking is disabled, the run already ended
        FAILED/KILLED (for ``FINISHED``), or the store failed.

    Raises:
        ValueError: ``status`` is not a terminal status.
    """
    if status not in TERMINAL_STATUSES:
        raise ValueError(f"status must be one of {TERMINAL_STATUSES}, got {status!r}")
    if not params.enabled or not run_id:
        return False
    run = TrackedRun(resolve_tracking_uri(params, project_path), run_id)

    def call(client: MlflowClient) -> bool:
        current_status = client.get_run(run_id).info.status
        if status == "FINISHED" and current_status in ("FAILED", "KILLED"):
            logger.info("MLflow: run %s stays %s (not marked FINISHED)", run_id, current_status)
            return False
        client.set_terminated(run_id, status)
        logger.info("MLflow: run %s marked %s", run_id, status)
        return True

    return bool(_safely(run, f"mark run {run_id} {status}", call))


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Log numeric values (non-numbers are skipped) to the current run; no-op without a run."""
    run = current()
    if run is None:
        return
    now = int(time.time() * 1000)
    items = []
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        items.append(Metric(sanitize_key(key), number, now, step or 0))
    if items:
        _safely(run, "log metrics", lambda c: store.log_batch(c, run.run_id, metrics=items))


def log_epoch(metrics: Mapping[str, Any], step: int) -> None:
    """Log one epoch's metrics with ``step=epoch`` (one value per key and epoch).

    Called by the trainer after every epoch, so the run shows live curves. No-op when no run is
    active (e.g. the trainer used as a library).
    """
    log_metrics(metrics, step=int(step))


def log_params(params: Mapping[str, str]) -> None:
    """Log string params; keys already on the run (a joined run) are not logged again."""
    run = current()
    if run is None:
        return

    def call(client: MlflowClient) -> None:
        existing = client.get_run(run.run_id).data.params
        changed = sorted(k for k, v in params.items() if k in existing and existing[k] != v)
        if changed:
            logger.warning(
                "MLflow: params already on run %s keep their values: %s", run.run_id, changed
            )
        new = {k: v for k, v in params.items() if k not in existing}
        store.log_batch(client, run.run_id, params=new)

    _safely(run, "log params", call)


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set run tags (values stringified); no-op without a run."""
    run = current()
    if run is not None and tags:
        _safely(run, "set tags", lambda c: store.log_batch(c, run.run_id, tags=tags))


def log_artifact(path: Path, artifact_path: str | None = None) -> None:
    """Upload one local file to the run; no-op without a run or when the file is missing."""
    run = current()
    if run is None or not Path(path).is_file():
        return
    _safely(
        run,
        f"log artifact {path}",
        lambda c: c.log_artifact(run.run_id, str(path), artifact_path=artifact_path),
    )


def log_text(text: str, artifact_file: str) -> None:
    """Store ``text`` as the run artifact ``artifact_file``; no-op without a run."""
    run = current()
    if run is not None:
        _safely(run, f"log {artifact_file}", lambda c: c.log_text(run.run_id, text, artifact_file))


@contextmanager
def using_tracking_uri(uri: str) -> Iterator[None]:
    """Temporarily point MLflow's fluent API (``log_model``, ``register_model``) at ``uri``."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(uri):
        yield
