"""The KFP parameter -> Kedro parameter mapping, and what a task does with the values."""

from __future__ import annotations

import sys

import pytest

from yolo_mlops.kubeflow.parameters import (
    PIPELINE_PARAMETERS,
    configured_kedro_keys,
    parameter_defaults,
)
from yolo_mlops.kubeflow.task import Stage, _typed, kedro_run_command, nest_overrides, run_stage


def test_mapping_covers_the_issue_parameters():
    assert {p.name: p.kedro_key for p in PIPELINE_PARAMETERS} == {
        "imgsz": "preprocessing.imgsz",
        "epochs": "training.epochs",
        "batch": "training.batch",
        "model_scale": "training.scale",
        "data_source": "data_ingestion.source",
        "mlflow_tracking_uri": "tracking.uri",
        "registered_model_name": "register.model_name",
    }


def test_defaults_come_from_params_with_fallbacks_and_types():
    defaults = parameter_defaults({"preprocessing": {"imgsz": 96.0}, "tracking": {"uri": None}})
    assert defaults["imgsz"] == 96 and isinstance(defaults["imgsz"], int)
    assert defaults["epochs"] == 100  # fallback
    assert defaults["mlflow_tracking_uri"] == ""  # null -> "keep the project's store"


def test_only_parameters_of_configured_blocks_are_overridden(caplog):
    configured = configured_kedro_keys({"training": {"epochs": 1}, "register": {"promotion": {}}})
    # register.model_name counts: the block exists (an env may override it partly)
    assert configured == {"epochs", "batch", "model_scale", "registered_model_name"}
    assert "'tracking' is not configured" in caplog.text


def test_kedro_run_command_passes_nodes_env_and_params():
    command = kedro_run_command(["a", "b"], "ci", {"training.epochs": 2, "training.scale": "s"})
    assert command == [
        sys.executable, "-m", "kedro", "run", "--nodes", "a,b", "--env", "ci",
        "--params", "training.epochs=2,training.scale=s",
    ]  # fmt: skip
    assert "--env" not in kedro_run_command(["a"], None)


def test_kedro_run_command_rejects_commas_in_values():
    with pytest.raises(ValueError, match=r"data_ingestion\.source"):
        kedro_run_command(["a"], None, {"data_ingestion.source": "a,b.zip"})


def test_integer_parameters_rendered_as_floats_are_cast_back():
    assert _typed({"preprocessing.imgsz": "64.0", "training.epochs": 2.0, "x.y": "1.5"}) == {
        "preprocessing.imgsz": 64,
        "training.epochs": 2,
        "x.y": "1.5",
    }


def test_run_stage_fails_with_the_command_when_kedro_fails(tmp_path):
    with pytest.raises(RuntimeError, match=r"stage 'ingest'.*kedro run --nodes nope"):
        run_stage(Stage("ingest", ["nope"], project_dir=tmp_path))


def test_dotted_overrides_are_nested_like_kedro_params():
    assert nest_overrides({"training.epochs": 7, "training.scale": "s", "tracking.uri": "x"}) == {
        "training": {"epochs": 7, "scale": "s"},
        "tracking": {"uri": "x"},
    }
