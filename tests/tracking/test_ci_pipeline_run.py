"""`kedro run --env ci` of the whole chain: one tracked MLflow run and a registered version, and a
git working tree as clean after it as before."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from mlflow import MlflowClient

from tests.conftest import PROJECT_ROOT
from tests.tracking.helpers import embedded_store
from yolo_mlops.ingestion.synthetic import SyntheticSpec, write_synthetic_dataset, zip_dataset


def git(project: Path, *args: str) -> str:
    """``git args`` in ``project``; its standard output."""
    done = subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, check=True)
    return done.stdout


@pytest.mark.integration
def test_ci_run_gives_one_run_with_params_epochs_artifacts_tags_and_a_version(
    tmp_path, monkeypatch, caplog
):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project)
    for env in ("base", "ci"):
        shutil.copytree(PROJECT_ROOT / "conf" / env, project / "conf" / env)
    (project / "conf/local").mkdir()
    for name in (".gitignore", ".telemetry"):
        shutil.copy(PROJECT_ROOT / name, project)
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "snapshot")
    write_synthetic_dataset(tmp_path / "synth", SyntheticSpec(n_images=8), seed=0)
    archive = zip_dataset(tmp_path / "synth", tmp_path / "coco128.zip", top_level="coco128")
    monkeypatch.setenv("YOLO_MLOPS_DATA_SOURCE", str(archive))
    monkeypatch.setenv("YOLO_MLOPS_DATA_SHA256", "null")
    uri = embedded_store(project)
    monkeypatch.chdir(project)
    bootstrap_project(project)

    caplog.set_level(logging.INFO, logger="yolo_mlops")
    with KedroSession.create(project_path=project, env="ci") as session:
        session.run()

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("yolo-mlops")
    (run,) = client.search_runs([experiment.experiment_id])
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    assert run.data.params["training.epochs"] == "2"
    assert run.data.params["tracking.experiment"] == "yolo-mlops"
    tags = run.data.tags
    manifest = json.loads((project / "data/01_raw/dataset_manifest.json").read_text())
    assert tags["data.archive_sha256"] == manifest["sha256"]
    assert tags["kedro.env"] == "ci" and tags["kedro.pipeline"] == "__default__"
    assert tags["device"] == "cpu" and {"seed", "torch.version", "git.commit"} <= set(tags)
    # everything the run wrote is git-ignored: the tree is as clean as before, and says so
    assert git(project, "status", "--porcelain") == ""
    assert tags["git.dirty"] == "false"

    per_epoch = {
        key: [m.step for m in client.get_metric_history(run_id, key)]
        for key in run.data.metrics
        if not key.startswith(("val/", "validate/", "verdict/"))
    }
    assert per_epoch, "no per-epoch metrics were logged"
    assert all(len(steps) == 2 == len(set(steps)) for steps in per_epoch.values()), per_epoch
    assert "val/mAP50-95" in run.data.metrics

    logged = {Path(a.path).name for a in client.list_artifacts(run_id, "reports")}
    written = {p.name for p in (project / "data/08_reporting").iterdir() if p.is_file()}
    assert written - logged == set()
    assert {"validation_summary.json", "training_history.csv", "metrics.json"} <= logged
    assert "params.yaml" in {a.path for a in client.list_artifacts(run_id)}

    registration = json.loads((project / "data/08_reporting/registration.json").read_text())
    assert registration["status"] == "registered" and registration["run_id"] == run_id
    version = client.get_model_version_by_alias("yolo11n-coco128", "challenger")
    assert str(version.version) == registration["version"]
    assert version.tags["dataset_sha256"] == manifest["sha256"]

    # The registry review: the logged model in the run's experiment, a model card, a dataset.
    assert run.info.run_name.startswith("yolo11n-96px-2ep-")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    (logged,) = client.search_logged_models([experiment.experiment_id])
    assert logged.source_run_id == run_id and logged.name == "yolo11n-coco128"
    assert [output.model_id for output in run.outputs.model_outputs] == [logged.model_id]
    assert "val/mAP50-95" in {metric.key for metric in logged.metrics}
    card = version.description
    assert card.startswith("Promoted: ") and "(with uncommitted changes)" not in card
    assert "?" not in card.split("- recipe:")[1].splitlines()[0]
    assert version.tags["promoted"] == "yes" and version.tags["speed.machine"]
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["coco128"]
    # 2 epochs of 8 images never reach bf16's start (after 60 optimizer steps): the checkpoint,
    # the run tag (planned at the start) and the card all say float32, what the run trained in
    best = torch.load(project / "data/06_models/best.pt", weights_only=True)
    trained = best["config"]["precision"]
    assert trained.startswith("float32")
    assert tags["training.precision"] == trained
    assert version.tags["training.precision"] == trained
    assert f"numeric precision: {trained}" in card

    # The summary block closes the run.
    (block,) = [r.getMessage() for r in caplog.records if "run summary" in r.getMessage()]
    assert "__default__ (env ci) FINISHED" in block
    assert "data/06_models/best.pt" in block and "data/06_models/last.pt" in block
    assert f"({run_id})" in block and "mAP50-95 " in block
    assert f"yolo11n-coco128: champion → v{version.version}" in block
