"""The project stays out of the user's environment: no telemetry, no files in the real home, a
clean working tree after a run (what runs create is git-ignored)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT, TEST_HOME
from yolo_mlops.ingestion.weights_cache import weights_cache_dir


def test_kedro_telemetry_reads_the_projects_refusal(monkeypatch):
    """kedro 1.7 installs kedro-telemetry; the committed ``.telemetry`` turns it off (no event,
    no notice, no ``project_id`` written into ``pyproject.toml``) without any env variable."""
    plugin = pytest.importorskip("kedro_telemetry.plugin")
    for name in ("DO_NOT_TRACK", "KEDRO_DISABLE_TELEMETRY", "GITHUB_REPOSITORY_OWNER"):
        monkeypatch.delenv(name, raising=False)
    assert plugin._check_for_telemetry_consent(PROJECT_ROOT) is False
    assert "kedro_telemetry" not in (PROJECT_ROOT / "pyproject.toml").read_text()


def _git_ignored(path: str) -> bool | None:
    """Whether git ignores ``path`` in this checkout; ``None`` without git or a repository."""
    if shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists():
        return None
    result = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", path], cwd=PROJECT_ROOT, check=False
    )
    return result.returncode == 0


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        (".telemetry", False),  # committed: it carries the consent
        ("mlflow.db", True),
        ("mlflow.db.lock", True),
        ("mlartifacts/1/x", True),
        ("data/08_reporting/metrics.json", True),
        ("data/08_reporting/validation_summary.json", True),
        ("data/08_reporting/training_history.csv", True),
        ("data/08_reporting/pr_curve.csv", True),
        ("data/01_raw/coco128.zip.dvc", False),
    ],
)
def test_what_runs_create_is_ignored_and_the_consent_is_not(path, ignored):
    found = _git_ignored(path)
    if found is None:
        pytest.skip("needs git and the project's repository")
    assert found is ignored


def test_tests_and_their_subprocesses_use_a_temporary_home():
    assert Path.home() == TEST_HOME
    assert weights_cache_dir().is_relative_to(TEST_HOME)
    code = "import os, pathlib; print(pathlib.Path.home(), os.environ['MPLCONFIGDIR'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    home, matplotlib_dir = out.stdout.split()
    assert Path(home) == TEST_HOME and Path(matplotlib_dir).is_relative_to(TEST_HOME)


def test_mlflow_telemetry_is_off_unless_the_user_opts_in():
    """MLflow 3 reports usage by default; importing the tracking layer turns it off first."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "PYTEST_CURRENT_TEST", "CI"}
    }
    code = (
        "import yolo_mlops.tracking.registry\n"
        "from mlflow.telemetry.utils import is_telemetry_disabled\n"
        "print(is_telemetry_disabled())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "True"
