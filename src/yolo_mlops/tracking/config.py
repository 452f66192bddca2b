"""Where tracking goes: the ``tracking`` parameter block and the tracking-URI resolution.

Resolution order for the tracking URI (first that is set wins):

1. the ``MLFLOW_TRACKING_URI`` environment variable (what a deployment or a CI job sets),
2. the ``tracking.uri`` parameter,
3. the embedded default ``sqlite:///<project>/mlflow.db``, artifacts in ``<project>/mlartifacts``.

The embedded default is always an absolute path built from the project path, so a run started
from another working directory still writes to the project's store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DEFAULT_EXPERIMENT = "yolo-mlops"
DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACT_DIR = "mlartifacts"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
RUN_ID_ENV = "MLFLOW_RUN_ID"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"


@dataclass(frozen=True)
class TrackingParams:
    """The ``tracking`` block of ``conf/base/parameters_tracking.yml``.

    Attributes:
        enabled: ``False`` turns every tracking call into a no-op (no run is created).
        uri: tracking URI; ``None`` means ``$MLFLOW_TRACKING_URI`` or the embedded sqlite store.
        experiment: experiment name (``$MLFLOW_EXPERIMENT_NAME`` wins when set).
        artifact_dir: artifact folder of the embedded store, relative to the project root.
        on_unreachable: what to do when the store cannot be reached before the pipeline starts:
            ``fail`` raises :class:`TrackingUnavailableError`, ``warn`` logs a warning and the
            run continues untracked.
        health_timeout_s: seconds to wait for ``GET <server>/health``.
        run_name: MLflow run name; ``None`` means ``yolo11<scale>-<imgsz>px-<epochs>ep-<id>``
            for a pipeline that trains, else ``<pipeline>-<id>`` (see ``tracking/ui.py``).
        max_param_length: longer parameter values are truncated (the full values are in the
            ``params.yaml`` artifact); ``None`` means MLflow's own limit (6000 characters).
    """

    enabled: bool = True
    uri: str | None = None
    experiment: str = DEFAULT_EXPERIMENT
    artifact_dir: str = DEFAULT_ARTIFACT_DIR
    on_unreachable: Literal["fail", "warn"] = "warn"
    health_timeout_s: float = 5.0
    run_name: str | None = None
    max_param_length: int | None = None


def default_tracking_uri(project_path: Path) -> str:
    """``sqlite:///<absolute project path>/mlflow.db``."""
    return f"sqlite:///{(Path(project_path).resolve() / DEFAULT_DB).as_posix()}"


def resolve_tracking_uri(params: TrackingParams, project_path: Path) -> str:
    """The tracking URI this run uses (env var, then parameter, then embedded default)."""
    return os.environ.get(TRACKING_URI_ENV) or params.uri or default_tracking_uri(project_path)


def resolve_experiment(params: TrackingParams) -> str:
    """The experiment name (``$MLFLOW_EXPERIMENT_NAME`` wins over the parameter)."""
    return os.environ.get(EXPERIMENT_ENV) or params.experiment


def artifact_location(uri: str, params: TrackingParams, project_path: Path) -> str | None:
    """Artifact root for a NEW experiment: project-local for sqlite stores, else the server's."""
    if uri.startswith("sqlite:"):
        return (Path(project_path).resolve() / params.artifact_dir).as_uri()
    return None


def is_http(uri: str) -> bool:
    """Whether the URI names a tracking server reached over HTTP(S)."""
    return uri.startswith(("http://", "https://"))
