"""The register pipeline: node wiring, skip when untracked, recovery after a lost server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from mlflow import MlflowClient

from tests.conftest import PROJECT_ROOT
from tests.tracking.conftest import isolated_tracking  # noqa: F401 - autouse fixture
from tests.tracking.export_helpers import export_report, export_small_model, small_checkpoint
from tests.tracking.helpers import embedded_store, free_port, synthetic_jpeg
from yolo_mlops.datasets.checkpoint_dataset import CheckpointDataset
from yolo_mlops.pipelines.register import create_pipeline
from yolo_mlops.pipelines.register.nodes import register_model
from yolo_mlops.tracking import run as tracking_run

CATALOG = {
    "model_checkpoint": {
        "type": "yolo_mlops.datasets.checkpoint_dataset.CheckpointDataset",
        "filepath": "data/06_models/best.pt",
    },
    "metrics": {"type": "json.JSONDataset", "filepath": "data/08_reporting/metrics.json"},
}


def test_pipeline_wires_the_register_model_node():
    (node,) = create_pipeline().nodes
    assert node.name == "register_model"
    assert node.inputs == [
        "model_checkpoint", "metrics", "exported_models", "export_report", "params:register",
    ]  # fmt: skip
    assert node.outputs == ["registration"]
    assert node.tags == {"register"}


def test_register_model_skips_with_a_reason_when_untracked(caplog):
    record = register_model({}, {"mAP50-95": 0.3}, {}, {}, {"model_name": "m"})
    assert record["status"] == "skipped"
    assert "no MLflow run" in record["reason"]
    assert "kedro run --pipelines register" in caplog.text


def test_register_model_skipped_after_a_lost_server_says_so(monkeypatch):
    lost = tracking_run.TrackedRun("http://127.0.0.1:9", "ab" * 16, owned=True, broken=True,
                                   broken_reason="set tags: GET /health failed")  # fmt: skip
    monkeypatch.setattr(tracking_run._state, "active", lost)
    record = register_model({}, {"mAP50-95": 0.3}, {}, {}, {"model_name": "m"})
    assert record["status"] == "skipped"
    assert record["reason"] == "MLflow tracking was lost mid-run (set tags: GET /health failed)"


@pytest.fixture
def trained_project(tmp_path, monkeypatch) -> Path:
    """A temp project holding what training, evaluation and export leave: best.pt,
    metrics.json, export/model.onnx and export.json."""
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root)
    for env in ("base", "local", "ci"):
        (root / "conf" / env).mkdir(parents=True)
    configs = ("parameters_register.yml", "parameters_tracking.yml", "catalog_register.yml",
               "catalog_export.yml")  # fmt: skip
    for name in configs:
        shutil.copy(PROJECT_ROOT / "conf/base" / name, root / "conf/base" / name)
    shutil.copy(PROJECT_ROOT / "conf/ci/parameters_register.yml", root / "conf/ci")
    (root / "conf/base/catalog_test.yml").write_text(yaml.safe_dump(CATALOG))
    CheckpointDataset(filepath=str(root / "data/06_models/best.pt")).save(small_checkpoint())
    metrics = root / "data/08_reporting/metrics.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text(json.dumps({"mAP50": 0.2, "mAP50-95": 0.1}))
    onnx = export_small_model(root / "data/06_models/export")
    (root / "data/08_reporting/export.json").write_text(json.dumps(export_report(onnx)))
    embedded_store(root)
    monkeypatch.chdir(root)
    bootstrap_project(root)
    return root


def _run_register(project: Path, env: str) -> dict:
    with KedroSession.create(project_path=project, env=env) as session:
        session.run(pipeline_names=["register"])
    return json.loads((project / "data/08_reporting/registration.json").read_text())


def test_register_pipeline_recovers_after_the_server_was_down(trained_project):
    down = trained_project / "conf/down"
    down.mkdir()
    tracking = yaml.safe_load((trained_project / "conf/base/parameters_tracking.yml").read_text())
    tracking["tracking"].update(uri=f"http://127.0.0.1:{free_port()}", health_timeout_s=1)
    (down / "parameters_tracking.yml").write_text(yaml.safe_dump(tracking))

    skipped = _run_register(trained_project, "down")
    assert skipped["status"] == "skipped"
    assert (trained_project / "data/06_models/best.pt").is_file()  # the model is kept

    record = _run_register(trained_project, "ci")  # store back: the embedded default
    assert record["status"] == "registered"
    assert record["model_name"] == "yolo11n-coco128"
    assert record["aliases"] == ["challenger", "champion"]
    assert record["serving_backend"] == "onnxruntime"  # the export stage's model.onnx
    client = MlflowClient(record["tracking_uri"])
    version = client.get_model_version_by_alias("yolo11n-coco128", "champion")
    assert str(version.version) == record["version"]
    assert version.tags["run_id"] == record["run_id"]
    run = client.get_run(record["run_id"])
    assert run.data.tags["kedro.pipeline"] == "register"
    assert run.info.status == "FINISHED"
    reports = {a.path for a in client.list_artifacts(record["run_id"], "reports")}
    assert "reports/registration.json" in reports

    mlflow.set_tracking_uri(record["tracking_uri"])
    try:
        model = mlflow.pyfunc.load_model("models:/yolo11n-coco128@champion")
    finally:
        mlflow.set_tracking_uri(None)
    frame = pd.DataFrame({"image": [synthetic_jpeg()]})
    out = model.predict(frame, params={"conf": 0.0, "max_det": 2})
    assert len(out) == 2 and set(out["class_name"]) <= {"cat", "dog", "bird"}
