"""Run lifecycle against the embedded sqlite store and a live ``mlflow server``."""

import logging
import os
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from tests.tracking.helpers import embedded_store, free_port, start_run
from yolo_mlops.tracking import log_epoch
from yolo_mlops.tracking import run as tracking_run
from yolo_mlops.tracking.config import (
    TrackingParams,
    default_tracking_uri,
    resolve_experiment,
    resolve_tracking_uri,
)


def test_default_uri_is_absolute_sqlite_in_the_project(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    uri = resolve_tracking_uri(TrackingParams(), tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert uri == default_tracking_uri(tmp_path)


def test_env_var_wins_over_parameter_which_wins_over_default(tmp_path, monkeypatch):
    assert resolve_tracking_uri(TrackingParams(uri="http://x:1"), tmp_path) == "http://x:1"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:2")
    assert resolve_tracking_uri(TrackingParams(uri="http://x:1"), tmp_path) == "http://env:2"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-env")
    assert resolve_experiment(TrackingParams(experiment="p")) == "from-env"


def test_embedded_store_run_has_project_local_artifacts_and_ends_finished(tmp_path):
    embedded_store(tmp_path)
    run = tracking_run.start_or_join(TrackingParams(), tmp_path, "r", {"k": "v"})
    assert run is not None and run.owned
    assert os.environ["MLFLOW_RUN_ID"] == run.run_id
    assert os.environ["MLFLOW_TRACKING_URI"] == default_tracking_uri(tmp_path)
    tracking_run.log_text("hello", "notes/a.txt")
    client = MlflowClient(run.uri)
    experiment = client.get_experiment_by_name("yolo-mlops")
    assert experiment.artifact_location == (tmp_path / "mlartifacts").resolve().as_uri()
    assert (tmp_path / "mlflow.db").is_file()
    tracking_run.end()
    assert "MLFLOW_RUN_ID" not in os.environ
    assert client.get_run(run.run_id).info.status == "FINISHED"
    assert client.get_run(run.run_id).data.tags["k"] == "v"
    assert list((tmp_path / "mlartifacts").rglob("a.txt"))


def test_log_epoch_gives_one_value_per_epoch(tmp_path):
    run = start_run(embedded_store(tmp_path), tmp_path)
    for epoch in range(3):
        log_epoch({"train/box_loss": 3.0 - epoch, "metrics/mAP50(B)": 0.1 * epoch}, step=epoch)
    history = MlflowClient(run.uri).get_metric_history(run.run_id, "train/box_loss")
    assert [(m.step, m.value) for m in history] == [(0, 3.0), (1, 2.0), (2, 1.0)]
    assert len(MlflowClient(run.uri).get_metric_history(run.run_id, "metrics/mAP50_B_")) == 3


def test_log_epoch_without_a_run_is_a_no_op():
    assert tracking_run.current() is None
    log_epoch({"loss": 1.0}, step=0)


def test_joins_run_named_by_mlflow_run_id_and_leaves_it_running(tmp_path, monkeypatch):
    uri = embedded_store(tmp_path)
    client = MlflowClient(uri)
    parent = client.create_run(client.create_experiment("outer")).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", parent)
    run = start_run(uri, tmp_path)
    assert run.run_id == parent and not run.owned
    log_epoch({"loss": 1.0}, step=0)
    tracking_run.end()
    assert client.get_run(parent).info.status == "RUNNING"
    assert os.environ["MLFLOW_RUN_ID"] == parent  # restored, not removed
    assert client.get_run(parent).data.tags["test"] == "yes"


def test_joins_the_active_fluent_run(tmp_path):
    uri = embedded_store(tmp_path)
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run() as outer:
            run = start_run("http://unused:1", tmp_path)
            assert run.run_id == outer.info.run_id and not run.owned
            tracking_run.end()
    finally:
        mlflow.set_tracking_uri(None)


def test_unreachable_server_fails_before_the_pipeline_when_configured(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    params = TrackingParams(uri=uri, on_unreachable="fail", health_timeout_s=1)
    with pytest.raises(tracking_run.TrackingUnavailableError, match=r"unreachable.*on_unreachable"):
        tracking_run.start_or_join(params, tmp_path, "r", {})


def test_unreachable_server_continues_untracked_with_a_warning(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("MLFLOW_RUN_ID", "outer-run-from-the-shell")
    uri = f"http://127.0.0.1:{free_port()}"
    params = TrackingParams(uri=uri, on_unreachable="warn", health_timeout_s=1)
    with caplog.at_level(logging.WARNING):
        assert tracking_run.start_or_join(params, tmp_path, "r", {}) is None
    assert "UNTRACKED" in caplog.text
    assert tracking_run.current() is None  # the env run id is ignored too
    log_epoch({"loss": 1.0}, step=0)  # no-op, no error


def test_disabled_tracking_creates_no_run(tmp_path):
    assert tracking_run.start_or_join(TrackingParams(enabled=False), tmp_path, "r", {}) is None
    assert not (tmp_path / "mlflow.db").exists()


def test_server_lost_mid_run_logs_a_warning_and_never_raises(caplog):
    run = tracking_run.TrackedRun(uri=f"http://127.0.0.1:{free_port()}", run_id="gone")
    tracking_run._state.active = run
    with caplog.at_level(logging.WARNING):
        log_epoch({"loss": 1.0}, step=0)
        tracking_run.log_artifact(Path(__file__))
    assert run.broken
    assert "server unreachable" in caplog.text
    assert tracking_run.current() is None


@pytest.mark.integration
def test_server_run_logs_params_metrics_and_artifacts(mlflow_server, tmp_path):
    run = start_run(mlflow_server, tmp_path, experiment="server-test")
    tracking_run.log_params({f"p{i}": str(i) for i in range(150)})  # > one log_batch
    log_epoch({"loss": 0.5}, step=0)
    report = tmp_path / "summary.json"
    report.write_text("{}")
    tracking_run.log_artifact(report, "reports")
    tracking_run.end()
    client = MlflowClient(mlflow_server)
    data = client.get_run(run.run_id)
    assert data.info.status == "FINISHED"
    assert len(data.data.params) == 150
    assert [a.path for a in client.list_artifacts(run.run_id, "reports")] == [
        "reports/summary.json"
    ]


def test_terminate_sets_a_joined_runs_status_and_never_overwrites_failed(tmp_path, caplog):
    uri = embedded_store(tmp_path)
    client = MlflowClient(uri)
    experiment = client.create_experiment("kfp")
    params = TrackingParams(uri=uri)
    shared = client.create_run(experiment).info.run_id
    assert tracking_run.terminate(shared, "FINISHED", params, tmp_path)
    assert client.get_run(shared).info.status == "FINISHED"
    assert tracking_run.terminate(shared, "FAILED", params, tmp_path)  # a later task failed
    assert not tracking_run.terminate(shared, "FINISHED", params, tmp_path)  # another sink
    assert client.get_run(shared).info.status == "FAILED"
    with pytest.raises(ValueError, match="RUNNING"):
        tracking_run.terminate(shared, "RUNNING", params, tmp_path)
    assert not tracking_run.terminate(shared, "FAILED", TrackingParams(enabled=False), tmp_path)
    with caplog.at_level(logging.WARNING):  # an unknown run or a store that is down: a warning
        assert not tracking_run.terminate("no-such-run", "FAILED", params, tmp_path)
        down = TrackingParams(uri=f"http://127.0.0.1:{free_port()}")
        assert not tracking_run.terminate(shared, "FINISHED", down, tmp_path)
    assert "no-such-run" in caplog.text and "server unreachable" in caplog.text


def test_end_without_status_leaves_an_owned_run_running(tmp_path):
    embedded_store(tmp_path)
    run = tracking_run.start_or_join(TrackingParams(), tmp_path, "r", {})
    assert run is not None and run.owned
    tracking_run.end(None)
    assert tracking_run.current() is None and "MLFLOW_RUN_ID" not in os.environ
    assert MlflowClient(run.uri).get_run(run.run_id).info.status == "RUNNING"
