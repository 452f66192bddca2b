"""How runs look in the MLflow UI: run names, the experiment's kind, links to pages.

- :func:`run_name`: readable and distinct run names, ``yolo11n-640px-100ep-3f9c2a`` for a run
  that trains (scale, image size, epochs, a short id of the Kedro session), ``register-3f9c2a``
  for the other pipelines;
- :func:`tag_experiment`: tags the experiment ``mlflow.experimentKind:
  custom_model_development``, so the UI opens it on its training runs, not on the GenAI
  overview (traces, token usage) that MLflow 3 shows for experiments of unknown kind;
- :func:`run_url`: the run page's URL when the store is a server, else the command that
  opens the UI on the embedded store and the page's route. The route carries
  ``?workflowType=machine_learning``: MLflow 3's UI keeps a "GenAI / Model training" switch of its
  own (remembered by the browser) that overrides the experiment's kind, and opens the
  experiment on the GenAI overview until it is set; the parameter sets it to model training.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from mlflow import MlflowClient

from yolo_mlops.tracking.config import is_http

logger = logging.getLogger(__name__)

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
TRAINING_NODE = "train_model"
LOCAL_UI = "http://127.0.0.1:5000"
TRAINING_VIEW = "workflowType=machine_learning"


def short_id(session_id: str) -> str:
    """Six hex characters derived from the Kedro session id (stable for one session)."""
    return hashlib.sha1(session_id.encode()).hexdigest()[:6]


def run_name(
    pipeline_name: str, flat_params: Mapping[str, Any], session_id: str, trains: bool
) -> str:
    """``yolo11<scale>-<imgsz>px-<epochs>ep-<id>`` when the pipeline trains, else
    ``<pipeline>-<id>`` (``__default__`` reads ``training``)."""
    ident = short_id(session_id or pipeline_name)
    scale, epochs = flat_params.get("training.scale"), flat_params.get("training.epochs")
    imgsz = flat_params.get("preprocessing.imgsz")
    if trains and None not in (scale, epochs, imgsz):
        return f"yolo11{scale}-{imgsz}px-{epochs}ep-{ident}"
    name = "training" if pipeline_name == "__default__" else pipeline_name
    return f"{name}-{ident}"


def pipeline_trains(pipeline: Any) -> bool:
    """Whether the Kedro pipeline contains the training node."""
    nodes = getattr(pipeline, "nodes", [])
    return any(getattr(node, "name", "") == TRAINING_NODE for node in nodes)


def tag_experiment(client: MlflowClient, run_id: str) -> None:
    """Mark the run's experiment as custom model development (idempotent, best effort)."""
    experiment_id = "?"
    try:
        experiment_id = client.get_run(run_id).info.experiment_id
        experiment = client.get_experiment(experiment_id)
        if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    except Exception as error:  # a cosmetic tag never stops a pipeline
        logger.warning("MLflow: could not tag experiment %s: %s", experiment_id, error)


def run_route(experiment_id: str, run_id: str) -> str:
    """The UI's route of a run page in the model-training view (after the host)."""
    return f"#/experiments/{experiment_id}/runs/{run_id}?{TRAINING_VIEW}"


def runs_route(experiment_id: str) -> str:
    """The UI's route of the experiment's training runs table (after the host)."""
    return f"#/experiments/{experiment_id}/runs?{TRAINING_VIEW}"


def run_url(uri: str, experiment_id: str, run_id: str) -> str:
    """Where to open the run: the server's page, or the ``mlflow ui`` command plus the page."""
    route = run_route(experiment_id, run_id)
    if is_http(uri):
        return f"{uri.rstrip('/')}/{route}"
    return f"`mlflow ui --backend-store-uri {uri}`, then {LOCAL_UI}/{route}"
