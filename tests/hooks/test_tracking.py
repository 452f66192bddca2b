"""MlflowTrackingHook through real KedroSession runs of a toy project (embedded sqlite store)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.pipeline import Node, Pipeline
from kedro.runner import ParallelRunner
from mlflow import MlflowClient

from tests.conftest import PROJECT_ROOT
from tests.hook_pipelines import evaluate_toy, explode, train_toy
from tests.tracking.conftest import isolated_tracking  # noqa: F401 - autouse fixture
from tests.tracking.helpers import embedded_store, free_port
from yolo_mlops.tracking import TrackingUnavailableError

EXPERIMENT = "hook-test"
LONG = "x" * 7000
PARAMS = {
    "tracking": {"experiment": EXPERIMENT, "health_timeout_s": 1},
    "training": {"seed": 3, "device": "cpu", "lr0": 0.01, "save_dir": LONG},
    "register": {"promotion": {"min_improvement": 0.02}},
}
CATALOG = {
    "validation_summary": {
        "type": "json.JSONDataset",
        "filepath": "data/08_reporting/validation_summary.json",
    },
    "metrics": {"type": "json.JSONDataset", "filepath": "data/08_reporting/metrics.json"},
}


def _pipelines() -> dict[str, Pipeline]:
    toy = Pipeline(
        [
            Node(train_toy, "params:training", "validation_summary", name="train_toy"),
            Node(evaluate_toy, "validation_summary", "metrics", name="evaluate_toy"),
        ]
    )
    boom = Pipeline([Node(explode, "params:training", None, name="explode")])
    return {"__default__": toy, "toy": toy, "boom": boom}


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A temp Kedro project (our package, toy pipelines, conf in tmp) with an embedded store."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / "src").mkdir()  # the package itself is imported from the installed project
    for env in ("base", "local"):
        (root / "conf" / env).mkdir(parents=True)
    (root / "conf/base/parameters.yml").write_text(yaml.safe_dump(PARAMS))
    (root / "conf/base/catalog.yml").write_text(yaml.safe_dump(CATALOG))
    manifest = root / "data/01_raw/dataset_manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"sha256": "feedbeef"}))
    embedded_store(root)
    monkeypatch.setattr("yolo_mlops.pipeline_registry.register_pipelines", _pipelines)
    monkeypatch.chdir(root)
    bootstrap_project(root)
    return root


def _run(project: Path, pipeline: str, env: str | None = None, **run_args) -> None:
    with KedroSession.create(project_path=project, env=env) as session:
        session.run(pipeline_names=[pipeline], **run_args)


def _runs(project: Path) -> list:
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


def test_one_run_per_kedro_run_with_params_tags_metrics_and_artifacts(project):
    _run(project, "toy")
    runs = _runs(project)
    assert len(runs) == 1
    run = runs[0]
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    assert run.info.status == "FINISHED"
    assert run.data.params["register.promotion.min_improvement"] == "0.02"
    assert run.data.params["training.seed"] == "3"
    assert len(run.data.params["training.save_dir"]) == 6000  # truncated to MLflow's limit
    tags = run.data.tags
    assert tags["kedro.env"] == "local" and tags["kedro.pipeline"] == "toy"
    assert tags["seed"] == "3" and tags["device"] == "cpu" and tags["torch.version"]
    assert tags["data.archive_sha256"] == "feedbeef"
    assert "git.commit" in tags and "git.dirty" in tags
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in history] == [0, 1, 2]
    assert run.data.metrics["child/value"] == 7.0  # logged by a child process
    assert run.data.metrics["val/mAP50-95"] == 0.25
    assert run.data.metrics["validate/instances"] == 12
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    reports = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
    assert "params.yaml" in artifacts
    assert reports == {"reports/validation_summary.json", "reports/metrics.json"}
    params_yaml = yaml.safe_load(
        Path(client.download_artifacts(run.info.run_id, "params.yaml")).read_text()
    )
    assert params_yaml["training"]["save_dir"] == LONG  # full value in the artifact
    assert list((project / "mlartifacts").rglob("params.yaml"))  # project-local artifacts

    _run(project, "toy")
    assert len(_runs(project)) == 2  # one more kedro run, one more MLflow run


def test_failing_pipeline_marks_the_run_failed(project):
    with pytest.raises(RuntimeError, match="boom in node"):
        _run(project, "boom")
    (run,) = _runs(project)
    assert run.info.status == "FAILED"
    assert "boom in node" in run.data.tags["error"]


def test_existing_run_from_mlflow_run_id_is_joined_not_replaced(project, monkeypatch):
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    parent = client.create_run(client.create_experiment(EXPERIMENT)).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", parent)
    _run(project, "toy")
    (run,) = _runs(project)
    assert run.info.run_id == parent
    assert run.info.status == "RUNNING"  # the owner ends it, not the hook
    assert len(client.get_metric_history(parent, "train/loss")) == 3


def _unreachable_env(project: Path, policy: str) -> str:
    tracking = {**PARAMS["tracking"], "uri": f"http://127.0.0.1:{free_port()}"}
    tracking["on_unreachable"] = policy
    (project / "conf" / policy).mkdir()
    (project / "conf" / policy / "parameters.yml").write_text(
        yaml.safe_dump({"tracking": tracking})
    )
    return policy


def test_unreachable_server_fails_before_any_node_runs(project):
    env = _unreachable_env(project, "fail")
    with pytest.raises(TrackingUnavailableError, match="unreachable"):
        _run(project, "toy", env=env)
    assert not (project / "node_ran.txt").exists()


def test_unreachable_server_under_warn_trains_untracked(project, caplog):
    env = _unreachable_env(project, "warn")
    _run(project, "toy", env=env)
    assert (project / "node_ran.txt").exists()
    assert (project / "data/08_reporting/metrics.json").exists()
    assert "UNTRACKED" in caplog.text
    assert _runs(project) == []


def test_parallel_runner_workers_log_into_the_one_run(project):
    _run(project, "toy", runner=ParallelRunner(max_workers=2))
    (run,) = _runs(project)
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    assert run.info.status == "FINISHED"
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 3
    assert run.data.metrics["val/mAP50-95"] == 0.25  # logged by the hook in a worker
    reports = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
    assert reports == {"reports/validation_summary.json", "reports/metrics.json"}


def test_one_process_per_node_execution_still_gives_one_run(project, monkeypatch):
    """Like Kubeflow: every node its own `kedro run --nodes`, all joined by MLFLOW_RUN_ID."""
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    parent = client.create_run(client.create_experiment(EXPERIMENT)).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", parent)
    for node in ("train_toy", "evaluate_toy"):
        _run(project, "toy", node_names=[node])
    (run,) = _runs(project)
    assert run.info.run_id == parent
    assert run.data.metrics["val/mAP50-95"] == 0.25
    assert len(client.get_metric_history(parent, "train/loss")) == 3


def test_base_weights_tags_describe_what_the_weights_hook_fetched():
    from yolo_mlops.hooks.tracking import _base_weights_tags
    from yolo_mlops.hooks.weights import PretrainedWeightsHook
    from yolo_mlops.ingestion.weights_cache import BaseWeights

    weights = PretrainedWeightsHook()
    assert _base_weights_tags(None) == _base_weights_tags(weights) == {}  # the run does not train
    weights.trains = True
    assert _base_weights_tags(weights) == {"base_weights.name": "none"}  # from scratch
    weights.pretrained = BaseWeights(
        "training.pretrained", "yolo11n.pt", "yolo11n.pt", "https://x/yolo11n.pt", "/c/y.pt",
        5, "ab" * 32, "n", 80,
    )  # fmt: skip
    assert _base_weights_tags(weights) == {
        "base_weights.name": "yolo11n.pt",
        "base_weights.url": "https://x/yolo11n.pt",
        "base_weights.sha256": "ab" * 32,
    }
