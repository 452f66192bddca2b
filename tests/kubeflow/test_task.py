"""One task at run time (:func:`run_stage`): the shared MLflow run's status across stages.

Each call runs ``kedro run --nodes ...`` of the fake project in a subprocess, as a KFP task does.
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from yolo_mlops.kubeflow.task import SharedRun, Stage, StageFailedError, run_stage

pytestmark = pytest.mark.integration


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch) -> str:
    """A sqlite store under tmp_path; run_stage exports MLFLOW_TRACKING_URI (restored after)."""
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _stage(project, stage: str, node: str, uri: str, **run) -> str:
    return run_stage(Stage(stage, [node], project, env="ci"), SharedRun(tracking_uri=uri, **run))


def test_run_stays_running_between_stages_and_the_sink_finishes_it(fake_project, tracking_uri):
    run_id = _stage(fake_project, "ingest", "download_dataset", tracking_uri, create=True)
    client = MlflowClient(tracking_uri)
    assert client.get_run(run_id).info.status == "RUNNING"  # the first task does not end it
    joined = _stage(fake_project, "validate", "validate_labels", tracking_uri, run_id=run_id)
    assert joined == run_id
    assert client.get_run(run_id).info.status == "RUNNING"  # nor does a task with a successor
    sink = {"run_id": run_id, "finish": True}
    _stage(fake_project, "preprocess", "build_image_cache", tracking_uri, **sink)
    assert client.get_run(run_id).info.status == "FINISHED"


def test_failing_later_stage_marks_the_run_failed_and_a_sink_keeps_it_failed(
    fake_project, tracking_uri
):
    run_id = _stage(fake_project, "ingest", "download_dataset", tracking_uri, create=True)
    (fake_project / "conf" / "ci" / "catalog.yml").write_text(
        "validation_summary:\n  type: json.JSONDataset\n  filepath: /dev/null/summary.json\n"
    )
    with pytest.raises(StageFailedError, match="validate"):
        _stage(fake_project, "validate", "validate_labels", tracking_uri, run_id=run_id)
    client = MlflowClient(tracking_uri)
    assert client.get_run(run_id).info.status == "FAILED"
    # a parallel branch's sink that succeeds afterwards does not overwrite FAILED
    sink = {"run_id": run_id, "finish": True}
    _stage(fake_project, "preprocess", "build_image_cache", tracking_uri, **sink)
    assert client.get_run(run_id).info.status == "FAILED"


def test_failing_first_stage_marks_the_run_it_created_failed(fake_project, tracking_uri):
    (fake_project / "conf" / "ci" / "catalog.yml").write_text(
        "dataset_manifest:\n  type: json.JSONDataset\n  filepath: /dev/null/manifest.json\n"
    )
    with pytest.raises(StageFailedError, match="ingest"):
        _stage(fake_project, "ingest", "download_dataset", tracking_uri, create=True)
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "FAILED"
    assert run.data.tags["orchestrator"] == "kubeflow"
