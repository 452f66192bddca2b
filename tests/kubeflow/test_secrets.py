"""Team-stack credentials reach compiled Kubeflow tasks as Secret references, never as values."""

from __future__ import annotations

import pytest
import yaml
from kfp import compiler, dsl

from yolo_mlops.kubeflow.secrets import DVC_SECRET, TRACKING_SECRET, SecretEnv, use_secrets


@dsl.container_component
def _stage():
    return dsl.ContainerSpec(image="yolo-mlops:latest", command=["true"])


def _compile(tmp_path, secrets) -> list[dict]:
    @dsl.pipeline(name="secrets")
    def pipeline():
        use_secrets(_stage(), secrets)

    path = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    return list(yaml.safe_load_all(path.read_text()))


def test_tracking_and_dvc_credentials_are_secret_references(tmp_path, kfp_kubernetes):
    documents = _compile(tmp_path, [TRACKING_SECRET, DVC_SECRET])
    platform = documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    (executor,) = platform.values()
    found = {
        item["secretName"]: {key["secretKey"]: key["envVar"] for key in item["keyToEnv"]}
        for item in executor["secretAsEnv"]
    }
    assert found == {
        "mlflow-pipeline": {v: k for k, v in TRACKING_SECRET.keys.items()},
        "dvc-s3": {v: k for k, v in DVC_SECRET.keys.items()},
    }
    assert found["dvc-s3"]["secret_access_key"] == "AWS_SECRET_ACCESS_KEY"


def test_one_variable_from_two_secrets_is_refused(tmp_path, kfp_kubernetes):
    twice = SecretEnv("other", {"MLFLOW_TRACKING_PASSWORD": "password"})
    with pytest.raises(ValueError, match="MLFLOW_TRACKING_PASSWORD comes from both"):
        _compile(tmp_path, [TRACKING_SECRET, twice])


def test_a_secret_without_keys_is_refused(tmp_path, kfp_kubernetes):
    with pytest.raises(ValueError, match="'empty': no keys"):
        _compile(tmp_path, [SecretEnv("empty")])
