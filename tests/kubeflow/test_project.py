"""The real project's pipelines: compile `training` and `data`; run `data` locally on `ci`.

The local run works in a throw-away copy of the project (conf/ and pyproject.toml copied,
``src`` linked, an empty ``data/``), on a synthetic dataset archive, with MLflow in a sqlite
file under tmp_path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from kedro.framework.project import pipelines
from kfp import local
from kfp.components import load_component_from_file
from mlflow import MlflowClient

from tests.conftest import PROJECT_ROOT
from yolo_mlops.ingestion.synthetic import SyntheticSpec, write_synthetic_dataset, zip_dataset
from yolo_mlops.kubeflow.compiler import CompileOptions, compile_project
from yolo_mlops.kubeflow.grouping import STAGE_TAGS, group_stages
from yolo_mlops.kubeflow.parameters import PIPELINE_PARAMETERS

LAYERS = ("01_raw", "02_intermediate", "03_primary", "04_feature", "05_model_input", "06_models",
          "07_model_output", "08_reporting")  # fmt: skip


def _compile(tmp_path: Path, name: str, parse_compiled, **options):
    path = compile_project(
        PROJECT_ROOT, name, CompileOptions(env="ci", **options), tmp_path / f"{name}.yaml"
    )
    return parse_compiled(path), group_stages(pipelines[name])


def test_training_pipeline_compiles_to_one_task_per_stage(tmp_path, parse_compiled, kfp_kubernetes):
    compiled, groups = _compile(tmp_path, "training", parse_compiled, gpu=1, cpu="4", memory="8Gi")
    assert [g.name for g in groups] == list(STAGE_TAGS)
    assert compiled.edges() == {g.task_name: sorted(g.dependencies) for g in groups}
    for group in groups:
        args = compiled.executor(group.task_name)["container"]["args"]
        assert args[args.index("--nodes") + 1] == ",".join(group.nodes)
    resources = compiled.executor("train")["container"]["resources"]
    assert resources["accelerator"]["resourceCount"] == "1"
    assert compiled.kubernetes("train")["emptyDirMounts"][0]["medium"] == "Memory"
    definitions = compiled.spec.root.input_definitions.parameters
    assert sorted(definitions) == sorted(p.name for p in PIPELINE_PARAMETERS)
    assert definitions["imgsz"].default_value.number_value == 96  # conf/ci
    train_args = compiled.executor("train")["container"]["args"]
    assert "training.epochs={{$.inputs.parameters['epochs']}}" in train_args
    assert "training.scale={{$.inputs.parameters['model_scale']}}" in train_args
    register_args = compiled.executor("register")["container"]["args"]
    assert "register.model_name={{$.inputs.parameters['registered_model_name']}}" in register_args


def test_data_pipeline_compiles_to_ingest_then_validate(tmp_path, parse_compiled, kfp_kubernetes):
    compiled, groups = _compile(tmp_path, "data", parse_compiled)
    assert compiled.edges() == {"ingest": [], "validate": ["ingest"]}
    assert [g.name for g in groups] == ["ingest", "validate"]
    ingest_args = compiled.executor("ingest")["container"]["args"]
    assert "data_ingestion.source={{$.inputs.parameters['data_source']}}" in ingest_args


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / "src").mkdir()  # Kedro wants a source folder; the package itself is installed
    for layer in LAYERS:
        (root / "data" / layer).mkdir(parents=True)
    # the synthetic archive is not the real COCO128: no checksum (the source is a run parameter)
    ingestion = root / "conf" / "ci" / "parameters_data_ingestion.yml"
    config = yaml.safe_load(ingestion.read_text())
    config["data_ingestion"]["sha256"] = None
    ingestion.write_text(yaml.safe_dump(config))
    return root


@pytest.fixture
def synthetic_archive(tmp_path: Path) -> Path:
    """A COCO128-shaped archive (top folder ``coco128``) so the shipped dataset YAML applies."""
    root = tmp_path / "synthetic" / "coco128"
    write_synthetic_dataset(root, SyntheticSpec(n_images=8), seed=0)
    return zip_dataset(root, tmp_path / "synthetic" / "coco128.zip", top_level="coco128")


def _run_locally(project: Path, pipeline: str, tmp_path: Path, **arguments) -> tuple:
    """Compile ``pipeline`` (``--local``, env ci), run it with kfp's SubprocessRunner, and return
    the MLflow client and the one run every task logged into (asserted to be the only run)."""
    path = compile_project(
        project, pipeline, CompileOptions(env="ci", local=True), tmp_path / "local.yaml"
    )
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "kfp_root"),
        raise_on_error=True,
    )
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    load_component_from_file(str(path))(mlflow_tracking_uri=tracking_uri, **arguments)
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    assert runs[0].data.tags["orchestrator"] == "kubeflow"
    return client, runs[0]


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")
def test_data_pipeline_runs_locally_on_ci_config_in_one_mlflow_run(
    tmp_path, project_copy, synthetic_archive
):
    _, run = _run_locally(project_copy, "data", tmp_path, data_source=str(synthetic_archive))

    data = project_copy / "data"
    summary = json.loads((data / "08_reporting" / "validation_summary.json").read_text())
    assert summary["images"] == 8
    assert (data / "03_primary" / "clean_labels.parquet").is_file()
    manifest = json.loads((data / "01_raw" / "dataset_manifest.json").read_text())
    assert manifest["source"] == str(synthetic_archive)

    assert "data.archive_sha256" in run.data.tags  # logged by the ingest task
    assert any(key.startswith("validate/") for key in run.data.metrics)  # by the validate task
    assert run.info.status == "FINISHED"  # by validate, the sink task


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning")
def test_training_pipeline_runs_locally_on_ci_config_in_one_mlflow_run(
    tmp_path, project_copy, synthetic_archive
):
    client, run = _run_locally(
        project_copy,
        "training",
        tmp_path,
        data_source=str(synthetic_archive),
        imgsz=64,
        epochs=1,
        batch=4,
        registered_model_name="kfp-local-yolo",
    )

    data = project_copy / "data"
    assert (data / "06_models" / "best.pt").is_file()
    metrics = json.loads((data / "08_reporting" / "metrics.json").read_text())
    assert "mAP50-95" in metrics
    registration = json.loads((data / "08_reporting" / "registration.json").read_text())
    assert "kfp-local-yolo" in json.dumps(registration)

    assert any(key.startswith("val/") for key in run.data.metrics)  # by the evaluate task
    assert run.info.status == "FINISHED"  # by register, the sink task
    (version,) = client.search_model_versions("name='kfp-local-yolo'")
    assert version.run_id == run.info.run_id
