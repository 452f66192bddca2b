"""The tracking store as the run module uses it: is it answering, its experiments, runs created
exactly once, batched writes.

Stateless helpers over one ``MlflowClient``; the process's run and its failure policy live in
:mod:`yolo_mlops.tracking.run`.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run, RunTag, ViewType
from mlflow.exceptions import MlflowException

from yolo_mlops.tracking.config import is_http

logger = logging.getLogger(__name__)

BATCH = 100  # MLflow's log_batch limit for params and tags per call
#: A unique value per run creation: the runs that share it are copies of one request.
CREATION_TAG = "yolo_mlops.creation_id"
#: On a copy: the run that was kept.
DUPLICATE_OF_TAG = "duplicate_of_run_id"


def probe(uri: str, timeout_s: float) -> str | None:
    """Check that the store answers. Returns ``None`` when it does, else the reason.

    HTTP(S) servers: ``GET <uri>/health`` must answer 200 within ``timeout_s``. Other stores
    (sqlite, databases): one ``search_experiments`` call (creates a new sqlite file).
    """
    if is_http(uri):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                if response.status == 200:
                    return None
                return f"GET {url} answered HTTP {response.status}"
        except (urllib.error.URLError, OSError, ValueError) as error:
            return f"GET {url} failed: {error}"
    try:
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as error:
        return f"tracking store {uri} failed: {type(error).__name__}: {error}"
    return None


def experiment_id(client: MlflowClient, name: str, location: str | None) -> str:
    """The id of experiment ``name``, created (with artifact ``location``) when missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # created concurrently by another process
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def create_run(
    client: MlflowClient, experiment_id: str, run_name: str, tags: Mapping[str, str]
) -> Run:
    """Create a run in ``experiment_id``, once, even when the HTTP client sent the request twice.

    MLflow's REST client retries every method, POST included (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``):
    a server that stored the run and died before answering receives the request again from its
    restarted self and stores a second run. Each creation carries a unique :data:`CREATION_TAG`;
    every other run bearing it is a copy that nothing will ever end: it is tagged
    :data:`DUPLICATE_OF_TAG`, ended KILLED and deleted (MLflow's soft delete).

    Returns:
        The run the server answered with.
    """
    token = uuid.uuid4().hex
    created = client.create_run(experiment_id, run_name=run_name,
                                tags={**tags, CREATION_TAG: token})  # fmt: skip
    _drop_copies(client, experiment_id, token, created.info.run_id)
    return created


def _drop_copies(client: MlflowClient, experiment_id: str, token: str, kept: str) -> None:
    """End and delete the runs of creation ``token`` other than ``kept``; never raises."""
    try:
        runs = client.search_runs([experiment_id], f"tags.`{CREATION_TAG}` = '{token}'",
                                  run_view_type=ViewType.ALL)  # fmt: skip
        for copy in [run.info.run_id for run in runs if run.info.run_id != kept]:
            client.set_tag(copy, DUPLICATE_OF_TAG, kept)
            client.set_terminated(copy, "KILLED")
            client.delete_run(copy)
            logger.warning("MLflow: run %s was created twice (the request was retried); "
                           "the copy %s is ended KILLED and deleted", kept, copy)  # fmt: skip
    except MlflowException as error:
        logger.warning("MLflow: could not look for copies of run %s: %s", kept, error)


def log_batch(
    client: MlflowClient,
    run_id: str,
    *,
    metrics: list[Metric] | None = None,
    params: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> None:
    """Write metrics, params and tags (values stringified) in calls of at most :data:`BATCH`."""
    param_items = [Param(k, v) for k, v in (params or {}).items()]
    tag_items = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    metric_items = metrics or []
    for start in range(0, max(len(param_items), len(tag_items), len(metric_items), 1), BATCH):
        client.log_batch(
            run_id,
            metrics=metric_items[start : start + BATCH],
            params=param_items[start : start + BATCH],
            tags=tag_items[start : start + BATCH],
        )
