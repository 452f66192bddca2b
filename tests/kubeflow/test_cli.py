"""`kedro kubeflow compile`: the Kedro project command."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner
from kedro.framework.startup import bootstrap_project

from tests.conftest import PROJECT_ROOT
from yolo_mlops.kubeflow.cli import commands


@pytest.fixture
def metadata():
    return bootstrap_project(PROJECT_ROOT)


def test_compile_command_writes_a_pipeline_spec(tmp_path, metadata, parse_compiled, kfp_kubernetes):
    output = tmp_path / "data.yaml"
    result = CliRunner().invoke(
        commands,
        ["kubeflow", "compile", "--pipeline", "data", "--env", "ci", "--image", "img:1",
         "--output", str(output), "--pvc", "claim"],
        obj=metadata,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    compiled = parse_compiled(output)
    assert compiled.edges() == {"ingest": [], "validate": ["ingest"]}
    assert compiled.executor("ingest")["container"]["image"] == "img:1"


def test_tracking_secret_reaches_every_task_as_a_secret_reference(
    tmp_path, metadata, kfp_kubernetes
):
    output = tmp_path / "data.yaml"
    result = CliRunner().invoke(
        commands,
        ["kubeflow", "compile", "--pipeline", "data", "--env", "ci", "--output", str(output),
         "--tracking-secret", "team-mlflow"],
        obj=metadata,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = output.read_text()
    executors = list(yaml.safe_load_all(text))[1]["platforms"]["kubernetes"]["deploymentSpec"]
    for executor in executors["executors"].values():
        (secret,) = executor["secretAsEnv"]
        assert secret["secretName"] == "team-mlflow"
        assert {k["envVar"] for k in secret["keyToEnv"]} == {
            "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"
        }  # fmt: skip
    assert "password:" not in text.lower()


def test_compile_command_reports_an_unknown_pipeline(tmp_path, metadata):
    result = CliRunner().invoke(
        commands,
        ["kubeflow", "compile", "--pipeline", "nope", "--output", str(tmp_path / "x.yaml")],
        obj=metadata,
    )
    assert result.exit_code == 1
    assert "no pipeline 'nope'" in result.output
    assert not (tmp_path / "x.yaml").exists()
