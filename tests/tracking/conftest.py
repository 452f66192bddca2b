"""Fixtures for the tracking tests: isolation from the environment, a live MLflow server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tracking.helpers import start_mlflow_server, stop, tiny_checkpoint
from yolo_mlops.tracking import run as tracking_run

ISOLATED_ENV = (
    "MLFLOW_RUN_ID",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_REGISTRY_URI",
)


@pytest.fixture(autouse=True)
def isolated_tracking(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No inherited MLflow env vars, no leftover run state or active fluent run."""
    import mlflow

    for name in ISOLATED_ENV:
        monkeypatch.delenv(name, raising=False)
    yield
    if tracking_run._state.active is not None:
        tracking_run.end("KILLED")
    tracking_run._state.active = None
    tracking_run._state.disabled_reason = None
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1 (sqlite backend, temp artifact root); its URI."""
    root: Path = tmp_path_factory.mktemp("mlflow_server")
    process, uri = start_mlflow_server(root)
    yield uri
    stop(process)


@pytest.fixture(scope="session")
def checkpoint() -> dict:
    """A random-weight 3-class YOLO11n checkpoint dict at imgsz 64."""
    return tiny_checkpoint()
