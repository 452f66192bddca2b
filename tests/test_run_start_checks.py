"""Training settings that need no data fail when `kedro run` starts, before any download."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from tests.conftest import PROJECT_ROOT
from yolo_mlops.yolo.train.run_guard import RunSettingsError

pytestmark = pytest.mark.integration


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    (root / "src").mkdir()
    (root / "data").mkdir()
    monkeypatch.chdir(root)
    bootstrap_project(root)
    return root


@pytest.mark.parametrize(
    ("training", "message"),
    [
        ({"device": "foo"}, r"training\.device='foo' is not a device"),
        ({"train_split": "training"}, r"training\.train_split='training' is not one of"),
        ({"resume": True}, r"training\.resume: no checkpoint at .*last\.pt"),
    ],
)
def test_bad_training_setting_fails_before_the_download(
    project: Path, tmp_path: Path, training: dict, message: str
) -> None:
    runtime = {
        "tracking": {"enabled": False},
        # A source that would fail the download: the run must stop before reaching it.
        "data_ingestion": {"source": str(tmp_path / "missing.zip")},
        "training": training,
    }
    with (
        KedroSession.create(project_path=project, env="local", runtime_params=runtime) as session,
        pytest.raises(RunSettingsError, match=message),
    ):
        session.run(pipeline_name="__default__")
    assert list((project / "data").rglob("*")) == []
