"""Run compiled pipelines with kfp's local SubprocessRunner (lightweight-component variant).

Each task runs ``kedro run --nodes ...`` in a subprocess in the project directory, exactly as the
cluster tasks do in the image; data crosses tasks through the project's ``data/`` folder.
"""

from __future__ import annotations

import json

import pytest
from kfp import local
from kfp.components import load_component_from_file
from mlflow import MlflowClient

from tests.kubeflow.fake_project import PARAMETERS, fake_catalog
from yolo_mlops.kubeflow.compiler import CompileOptions, compile_pipeline

pytestmark = [
    pytest.mark.integration,
    # the local runner warns that the project image is not a plain Python image: expected
    pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning"),
]


@pytest.fixture
def local_runner(tmp_path):
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "kfp_root"),
        raise_on_error=True,
    )


def test_fake_project_runs_end_to_end_with_runtime_parameters(
    tmp_path, fake_project, fake_pipelines, local_runner
):
    options = CompileOptions(local=True, env="ci", project_dir=str(fake_project))
    path = compile_pipeline(
        fake_pipelines["training"], fake_catalog(), PARAMETERS, options, tmp_path / "local.yaml"
    )
    pipeline = load_component_from_file(str(path))  # run what was compiled, not the DSL object
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    pipeline(
        imgsz=96,
        epochs=2,
        registered_model_name="kfp-local-model",
        mlflow_tracking_uri=tracking_uri,
    )

    data = fake_project / "data"
    cache = json.loads((data / "05_model_input" / "image_cache.json").read_text())
    assert cache == {"imgsz": 96, "images": 3}  # an int, not 96.0
    model = json.loads((data / "06_models" / "model_checkpoint.json").read_text())
    assert model["epochs"] == 2
    assert model["batch"] == 16  # base default kept
    registration = json.loads((data / "08_reporting" / "registration.json").read_text())
    assert registration == {"model_name": "kfp-local-model", "mAP50": 0.5}
    # the first task created the one shared run (the fake project has no tracking hook)
    (run,) = MlflowClient(tracking_uri).search_runs(
        [e.experiment_id for e in MlflowClient(tracking_uri).search_experiments()]
    )
    assert run.data.tags["orchestrator"] == "kubeflow"
    assert run.info.status == "FINISHED"  # by the sink task (register), after the last stage


def test_failing_stage_fails_the_local_run(tmp_path, fake_project, fake_pipelines, local_runner):
    options = CompileOptions(local=True, env="ci", project_dir=str(fake_project))
    path = compile_pipeline(
        fake_pipelines["data"], fake_catalog(), PARAMETERS, options, tmp_path / "local.yaml"
    )
    # compiled against a good catalog; at run time the ingest output cannot be written
    (fake_project / "conf" / "ci" / "parameters_tracking.yml").write_text(
        "tracking:\n  enabled: false\n"
    )
    (fake_project / "conf" / "ci" / "catalog.yml").write_text(
        "dataset_manifest:\n  type: json.JSONDataset\n  filepath: /dev/null/manifest.json\n"
    )
    with pytest.raises(RuntimeError, match="ingest"):
        load_component_from_file(str(path))()
    assert not (fake_project / "data" / "08_reporting" / "validation_summary.json").exists()


def test_failing_later_stage_marks_the_shared_run_failed(
    tmp_path, fake_project, fake_pipelines, local_runner
):
    options = CompileOptions(local=True, env="ci", project_dir=str(fake_project))
    path = compile_pipeline(
        fake_pipelines["data"], fake_catalog(), PARAMETERS, options, tmp_path / "local.yaml"
    )
    # ingest succeeds (and leaves the run RUNNING); validate cannot write its output
    (fake_project / "conf" / "ci" / "catalog.yml").write_text(
        "validation_summary:\n  type: json.JSONDataset\n  filepath: /dev/null/summary.json\n"
    )
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(RuntimeError, match="validate"):
        load_component_from_file(str(path))(mlflow_tracking_uri=tracking_uri)
    assert (fake_project / "data" / "01_raw" / "dataset_manifest.json").is_file()
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.data.tags["orchestrator"] == "kubeflow"
    assert run.info.status == "FAILED"
