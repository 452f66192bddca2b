"""The tracking hook against a live ``mlflow server`` (the toy project of hooks/test_tracking)."""

from __future__ import annotations

import pytest
import yaml
from mlflow import MlflowClient

from tests.hooks.test_tracking import EXPERIMENT, _run, project  # noqa: F401 - fixture reused
from yolo_mlops.tracking import TrackingUnavailableError


@pytest.mark.integration
def test_kedro_run_against_a_server_gives_one_run_with_proxied_artifacts(
    project,  # noqa: F811
    mlflow_server,
    monkeypatch,
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    before = 0 if experiment is None else len(client.search_runs([experiment.experiment_id]))
    _run(project, "toy")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    assert len(runs) == before + 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["training.seed"] == "3"
    assert run.data.metrics["child/value"] == 7.0
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 3
    reports = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
    assert reports == {"reports/validation_summary.json", "reports/metrics.json"}
    assert not (project / "mlartifacts").exists()  # the server stores artifacts, not the project


@pytest.mark.integration
def test_kedro_run_with_fail_policy_stops_when_the_server_is_gone(project, mlflow_server):  # noqa: F811
    down = mlflow_server.rsplit(":", 1)[0] + ":1"  # same host, a port nobody serves
    (project / "conf/gone").mkdir()
    tracking = {"experiment": EXPERIMENT, "uri": down, "on_unreachable": "fail"}
    (project / "conf/gone/parameters.yml").write_text(yaml.safe_dump({"tracking": tracking}))
    with pytest.raises(TrackingUnavailableError):
        _run(project, "toy", env="gone")
    assert not (project / "node_ran.txt").exists()
