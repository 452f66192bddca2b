"""Fixtures for the Kubeflow compiler tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from tests.kubeflow.fake_project import load_fake_pipelines, write_fake_project


class CompiledPipeline:
    """A compiled KFP IR YAML, parsed strictly into kfp's protobufs."""

    def __init__(self, path: Path):
        documents = list(yaml.safe_load_all(path.read_text()))
        self.raw = documents[0]
        self.spec = json_format.ParseDict(documents[0], pipeline_spec_pb2.PipelineSpec())
        self.platform = (
            json_format.ParseDict(documents[1], pipeline_spec_pb2.PlatformSpec())
            if len(documents) > 1
            else None
        )
        self.platform_raw = documents[1] if len(documents) > 1 else {}

    @property
    def tasks(self):
        return self.spec.root.dag.tasks

    def edges(self) -> dict[str, list[str]]:
        return {name: sorted(task.dependent_tasks) for name, task in self.tasks.items()}

    def executor(self, task: str) -> dict:
        label = self.raw["components"][f"comp-{task}"]["executorLabel"]
        return self.raw["deploymentSpec"]["executors"][label]

    def kubernetes(self, task: str) -> dict:
        label = self.raw["components"][f"comp-{task}"]["executorLabel"]
        executors = self.platform_raw["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        return executors.get(label, {})


@pytest.fixture
def kfp_kubernetes():
    """kfp-kubernetes (PVC, /dev/shm); a pyproject dependency, skipped with a reason if absent."""
    return pytest.importorskip(
        "kfp.kubernetes", reason="kfp-kubernetes==2.17.3 is not installed (see pyproject.toml)"
    )


@pytest.fixture
def fake_project(tmp_path: Path) -> Path:
    """The fake 6-stage Kedro project written under tmp_path/fake_project."""
    return write_fake_project(tmp_path / "fake_project")


@pytest.fixture
def fake_pipelines(fake_project: Path):
    return load_fake_pipelines(fake_project)


@pytest.fixture
def parse_compiled():
    return CompiledPipeline
