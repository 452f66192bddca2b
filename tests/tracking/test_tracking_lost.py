"""A tracking server killed mid-run: outputs kept, non-zero end naming the recovery command."""

from __future__ import annotations

import os

import pytest
from kedro.pipeline import Node, Pipeline

from tests.hook_pipelines import evaluate_toy, lose_server
from tests.hooks.test_tracking import EXPERIMENT, _run, project  # noqa: F401 - fixture reused
from tests.tracking.helpers import start_mlflow_server
from yolo_mlops.tracking import run as tracking_run
from yolo_mlops.tracking.recovery import TrackingLostError

pytestmark = pytest.mark.integration


def test_server_killed_mid_run_ends_non_zero_with_the_register_command(
    project,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    server_root = tmp_path / "server"
    server_root.mkdir()
    process, uri = start_mlflow_server(server_root, own_group=True)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setenv("TOY_SERVER_PGID", str(os.getpgid(process.pid)))
        lose = Pipeline(
            [
                Node(lose_server, "params:training", "validation_summary", name="lose_server"),
                Node(evaluate_toy, "validation_summary", "metrics", name="evaluate_toy"),
            ]
        )
        monkeypatch.setattr(
            "yolo_mlops.pipeline_registry.register_pipelines",
            lambda: {"__default__": lose, "lose": lose},
        )
        with pytest.raises(TrackingLostError, match=r"kedro run --pipelines register$") as error:
            _run(project, "lose")
        assert "lost during `kedro run --pipelines lose`" in str(error.value)
        assert (project / "node_ran.txt").exists()
        assert (project / "data/08_reporting/metrics.json").is_file()  # outputs kept
        assert tracking_run.current() is None
    finally:
        process.wait(timeout=30)
