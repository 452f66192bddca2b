"""The tracking store as the run module uses it: is it answering, its experiments, batched writes.

Stateless helpers over one ``MlflowClient``; the process's run and its failure policy live in
:mod:`yolo_mlops.tracking.run`.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from yolo_mlops.tracking.config import is_http

BATCH = 100  # MLflow's log_batch limit for params and tags per call


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
