"""Where tracking goes: the ``tracking`` parameter block and the tracking-URI resolution.

Resolution order for the tracking URI (first that is set wins):

1. the ``MLFLOW_TRACKING_URI`` environment variable (what a deployment or a CI job sets),
2. the ``tracking.uri`` parameter,
3. the embedded default ``sqlite:///<project>/mlflow.db``, artifacts in ``<project>/mlartifacts``.

The embedded default is always an absolute path built from the project path, so a run started
from another working directory still writes to the project's store.

Credentials of a tracking server with authentication (docs/team.md) come only from the
environment (``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``, read by MLflow's
client), never from ``conf/``: a server URI with a password in it is refused.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DEFAULT_EXPERIMENT = "yolo-mlops"
DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACT_DIR = "mlartifacts"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
RUN_ID_ENV = "MLFLOW_RUN_ID"
EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"  # read by MLflow's client for HTTP(S) servers
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"


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
    """The tracking URI this run uses (env var, then parameter, then embedded default).

    Raises:
        ValueError: an HTTP(S) URI carries a password (``http://user:secret@host``): it would be
            recorded in checkpoints and registration records. Credentials come only from
            ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``.
    """
    if os.environ.get(TRACKING_URI_ENV):
        return _without_password(os.environ[TRACKING_URI_ENV], f"${TRACKING_URI_ENV}")
    if params.uri:
        return _without_password(params.uri, "the tracking.uri parameter")
    return default_tracking_uri(project_path)


def _without_password(uri: str, source: str) -> str:
    if is_http(uri) and urllib.parse.urlsplit(uri).password:  # a database URI needs its own
        raise ValueError(
            f"{source} contains a password; remove it from the URI and set "
            f"{USERNAME_ENV} and {PASSWORD_ENV} in the environment instead"
        )
    return uri


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
