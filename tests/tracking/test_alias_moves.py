"""A version that loses an alias says so; a run left RUNNING by a lost server is completed."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from tests.tracking.helpers import embedded_store
from yolo_mlops.tracking import alias_moves
from yolo_mlops.tracking import run as tracking_run


@pytest.fixture
def client(tmp_path) -> MlflowClient:
    client = MlflowClient(embedded_store(tmp_path))
    client.create_registered_model("m")
    for _ in range(2):
        client.create_model_version("m", source="file:///unused", description="Aliases now: v1.")
    return client


def test_a_version_that_loses_champion_gets_a_tag_and_a_later_line(client):
    client.set_registered_model_alias("m", "champion", "1")
    client.set_registered_model_alias("m", "challenger", "1")
    before = alias_moves.holders(client, "m", ["challenger", "champion"])
    client.set_registered_model_alias("m", "champion", "2")
    moved = alias_moves.note_moves(client, "m", before, "2", "run-b")
    assert moved == ["champion"]  # challenger stayed on v1
    old = client.get_model_version("m", "1")
    assert old.tags["moved.champion"] == "v2 by run run-b"
    assert old.description.startswith("Aliases now: v1.")  # the card as written stays
    assert old.description.rstrip().endswith("Later: @champion moved to v2 (run run-b).")
    assert "moved.champion" not in client.get_model_version("m", "2").tags


def test_no_alias_before_means_nothing_to_note(client):
    assert alias_moves.note_moves(client, "m", {}, "1", "run-a") == []


def _run(client: MlflowClient) -> str:
    return client.create_run(client.create_experiment("e")).info.run_id


def test_a_lost_training_run_is_completed_by_the_registering_run(client, monkeypatch):
    lost = _run(client)
    registering = tracking_run.TrackedRun(client.tracking_uri, "run-register")
    monkeypatch.setattr(tracking_run, "current", lambda: registering)
    assert alias_moves.complete_lost_run(client, lost)
    run = client.get_run(lost)
    assert run.info.status == "FINISHED"
    assert run.data.tags[alias_moves.COMPLETED_BY_TAG] == "run-register"


def test_the_pipelines_own_run_is_left_to_its_hook(client, monkeypatch):
    own = _run(client)
    monkeypatch.setattr(
        tracking_run, "current", lambda: tracking_run.TrackedRun(client.tracking_uri, own)
    )
    assert not alias_moves.complete_lost_run(client, own)
    assert client.get_run(own).info.status == "RUNNING"
