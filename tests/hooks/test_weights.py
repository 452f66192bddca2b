"""The initial weights are prepared when a run starts, before any node and any MLflow run.

The `kedro run --pipelines training` tests run a copy of the project (conf + pyproject in
tmp_path) on a synthetic 3-class dataset with the `ci` sizes, the weights served by a loopback
stand-in for the release; the weights cache lives in tmp_path.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from mlflow import MlflowClient

from tests.conftest import PROJECT_ROOT
from tests.tracking.conftest import isolated_tracking  # noqa: F401 - autouse fixture
from tests.tracking.helpers import embedded_store
from tests.weights_helpers import RELEASE_PATH, release_server, yolo11n_file
from yolo_mlops.hooks.weights import prepare_weights
from yolo_mlops.ingestion import weights_cache
from yolo_mlops.ingestion.download import RetryPolicy
from yolo_mlops.ingestion.synthetic import SyntheticSpec, write_synthetic_dataset, zip_dataset
from yolo_mlops.ingestion.weights_cache import WeightsFetchError
from yolo_mlops.pipelines.evaluate.evaluation import EvaluationParams, select_checkpoint
from yolo_mlops.pipelines.params import parse_params
from yolo_mlops.yolo.io.checkpoint import read_checkpoint
from yolo_mlops.yolo.io.weights import CLASS_BRANCH, WeightsError
from yolo_mlops.yolo.train.precision import native_bf16
from yolo_mlops.yolo.train.trainer import Trainer


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "weights-cache"
    monkeypatch.setenv("YOLO_MLOPS_WEIGHTS_DIR", str(folder))
    monkeypatch.setattr(weights_cache, "RETRY_POLICY", RetryPolicy(retries=0))
    return folder


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    return yolo11n_file(tmp_path_factory.mktemp("weights"))


def test_official_name_of_another_scale_fails_before_any_request(weights_file):
    with release_server({"yolo11s.pt": weights_file.read_bytes()}) as (base_url, state):
        params = {"training": {"pretrained": "yolo11s.pt", "weights_base_url": base_url}}
        with pytest.raises(WeightsError, match=r"YOLO11s weights but training\.scale is 'n'"):
            prepare_weights(params, {"train_model"})
    assert state.requests == []


def test_only_runs_that_train_or_evaluate_a_named_checkpoint_fetch(weights_file):
    with release_server({"yolo11n.pt": weights_file.read_bytes()}) as (base_url, state):
        params = {
            "training": {"pretrained": "yolo11n.pt", "weights_base_url": base_url},
            "evaluation": {"checkpoint": "yolo11n.pt", "weights_base_url": base_url},
        }
        assert prepare_weights(params, {"download_dataset", "validate_labels"}) == []
        assert state.requests == []
        (evaluated,) = prepare_weights(params, {"evaluate_model"})
        assert evaluated.parameter == "evaluation.checkpoint" and len(state.requests) == 1
        (trained, _) = prepare_weights(params, {"train_model", "evaluate_model"})
        assert trained.sha256 == evaluated.sha256 and len(state.requests) == 1


def test_evaluation_checkpoint_accepts_an_official_name(weights_file):
    with release_server({"yolo11n.pt": weights_file.read_bytes()}) as (base_url, state):
        params = parse_params(
            EvaluationParams, {"checkpoint": "yolo11n.pt", "weights_base_url": base_url}
        )
        checkpoint = select_checkpoint(params, model_checkpoint=None)
    assert (checkpoint["config"]["scale"], checkpoint["config"]["nc"]) == ("n", 80)
    assert [path for path, _ in state.requests] == [f"{RELEASE_PATH}/yolo11n.pt"]


# ----------------------------------------------------------------------------- kedro runs
@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A copy of the project skeleton with an embedded MLflow store and a synthetic dataset."""
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root)
    for env in ("base", "ci"):
        shutil.copytree(PROJECT_ROOT / "conf" / env, root / "conf" / env)
    (root / "conf/local").mkdir()
    write_synthetic_dataset(tmp_path / "synth", SyntheticSpec(n_images=8), seed=0)
    archive = zip_dataset(tmp_path / "synth", tmp_path / "coco128.zip", top_level="coco128")
    monkeypatch.setenv("YOLO_MLOPS_DATA_SOURCE", str(archive))
    monkeypatch.setenv("YOLO_MLOPS_DATA_SHA256", "null")
    embedded_store(root)
    monkeypatch.chdir(root)
    bootstrap_project(root)
    return root


def _run_training(project: Path, runtime_params: dict) -> None:
    with KedroSession.create(project_path=project, env="ci", runtime_params=runtime_params) as s:
        s.run(pipeline_name="training")


def _runs(project: Path) -> list:
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("yolo-mlops")
    return client.search_runs([experiment.experiment_id]) if experiment else []


@pytest.mark.integration
def test_offline_run_stops_before_download_cache_training_and_mlflow_run(project, cache_dir):
    with release_server({}) as (base_url, _):
        pass  # closed port: "offline"
    params = {"training": {"pretrained": "yolo11n.pt", "weights_base_url": base_url}}
    with pytest.raises(WeightsFetchError) as info:
        _run_training(project, params)
    assert f"{base_url}/yolo11n.pt" in str(info.value)
    assert "--params training.pretrained=/path/to/yolo11n.pt" in str(info.value)
    data = project / "data"
    assert not data.exists() or not [p for p in data.rglob("*") if p.is_file()]
    assert _runs(project) == []
    assert not any(p.suffix == ".pt" for p in cache_dir.rglob("*"))


@pytest.mark.integration
def test_training_run_starts_from_the_downloaded_weights_and_records_them(
    project, weights_file, monkeypatch
):
    at_step_0 = {}
    build_model = Trainer._build_model

    def recording_build_model(self):
        model = build_model(self)
        at_step_0.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return model

    monkeypatch.setattr(Trainer, "_build_model", recording_build_model)
    body = weights_file.read_bytes()
    with release_server({"yolo11n.pt": body}) as (base_url, state):
        params = {
            "training": {"pretrained": "yolo11n.pt", "weights_base_url": base_url, "epochs": 1},
        }
        _run_training(project, params)
    assert len(state.requests) == 1  # the hook downloaded; the node found it cached

    expected = read_checkpoint(weights_file)["state_dict"]
    same = [k for k in at_step_0 if not k.startswith(CLASS_BRANCH)]
    assert (len(at_step_0), len(same)) == (499, 421)  # 78 tensors in the class branch
    for key in same:  # the synthetic dataset has 3 classes: only the class branch differs
        torch.testing.assert_close(at_step_0[key], expected[key], rtol=0, atol=0)

    best = torch.load(project / "data/06_models/best.pt", weights_only=True)
    base = best["config"]["base_weights"]
    assert best["config"]["train_args"]["pretrained"] == "yolo11n.pt"
    assert (base["name"], base["url"], base["size"]) == (
        "yolo11n.pt", f"{base_url}/yolo11n.pt", len(body),
    )  # fmt: skip
    (run,) = _runs(project)
    tags = run.data.tags
    assert tags["base_weights.name"] == "yolo11n.pt"
    assert tags["base_weights.url"] == f"{base_url}/yolo11n.pt"
    assert tags["base_weights.sha256"] == base["sha256"]
    # bf16: auto from trained weights; the trainer logged the same resolution at start-up
    assert tags["training.precision"] == ("bfloat16 autocast" if native_bf16() else "float32")
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    version = client.get_model_version_by_alias("yolo11n-coco128", "challenger")
    assert version.tags["base_weights.sha256"] == base["sha256"]
    assert version.tags["base_weights.url"] == f"{base_url}/yolo11n.pt"


def test_a_resumed_run_fetches_no_initial_weights_and_keeps_the_checkpoints_record(tmp_path):
    from yolo_mlops.hooks.weights import prepare_weights, resumed_weights_record
    from yolo_mlops.yolo.io.checkpoint import make_config, save_checkpoint

    record = {"name": "yolo11n.pt", "sha256": "ab" * 32}
    config = make_config(scale="n", nc=1, names=["a"], imgsz=64, train_args={"epochs": 3})
    save_checkpoint(tmp_path / "last.pt", state_dict={}, config={**config, "base_weights": record},
                    training={"epoch": 0})  # fmt: skip
    offline = "http://127.0.0.1:9/"  # a closed port: any fetch would fail
    params = {"training": {"resume": True, "save_dir": str(tmp_path),
                           "pretrained": "yolo11n.pt", "weights_base_url": offline}}  # fmt: skip
    assert prepare_weights(params, {"train_model"}) == []
    assert resumed_weights_record(params) == record
