"""deploy/team_stack.py without services: secrets stay private, each S3 identity its bucket."""

from __future__ import annotations

import stat

import pytest

from tests.deploy.conftest import load_script, missing_modules

pytestmark = pytest.mark.skipif(bool(missing_modules()), reason="team extra not installed")


@pytest.fixture
def team_stack():
    return load_script()


def test_secrets_are_generated_once_and_readable_by_the_owner_only(team_stack, tmp_path):
    first = team_stack.files.load_secrets(tmp_path)
    assert team_stack.files.load_secrets(tmp_path) == first  # kept, not regenerated
    assert stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode) == 0o600
    assert len({first[key] for key in ("pipeline", "reader", "admin", "postgres")}) == 4


def test_the_admin_password_comes_from_the_environment_when_set(team_stack, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "from-env")
    assert team_stack.files.load_secrets(tmp_path)["admin"] == "from-env"


def test_each_s3_identity_is_scoped_to_its_bucket(team_stack, tmp_path):
    values = team_stack.files.load_secrets(tmp_path)
    identities = team_stack.seaweedfs.identities(values)["identities"]
    actions = {identity["name"]: set(identity["actions"]) for identity in identities}
    assert actions["mlflow-server"] == {
        "Read:mlflow",
        "Write:mlflow",
        "List:mlflow",
        "Tagging:mlflow",
    }
    assert actions["dvc"] == {"Read:dvc", "Write:dvc", "List:dvc", "Tagging:dvc"}
    assert "Admin" in actions["admin"]


def test_stop_without_a_stack_does_nothing(team_stack, tmp_path):
    team_stack.stop(tmp_path)  # no stack.json: nothing to end, no error
