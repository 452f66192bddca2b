"""Runs are created once even when the HTTP client sends the creation twice."""

import logging

from mlflow import MlflowClient
from mlflow.entities import ViewType

from tests.tracking.helpers import embedded_store, sent_twice
from yolo_mlops.tracking import store


def test_a_retried_creation_leaves_one_live_run_and_ends_and_deletes_the_copy(
    tmp_path, monkeypatch, caplog
):
    client = MlflowClient(embedded_store(tmp_path))
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "a").as_uri())
    sent_twice(monkeypatch, "create_run")
    with caplog.at_level(logging.WARNING, logger="yolo_mlops.tracking.store"):
        kept = store.create_run(client, experiment, "train", {"k": "v"})

    runs = client.search_runs([experiment], run_view_type=ViewType.ALL)
    assert len(runs) == 2
    copy = next(run for run in runs if run.info.run_id != kept.info.run_id)
    assert client.get_run(kept.info.run_id).info.status == "RUNNING"
    assert client.get_run(kept.info.run_id).info.lifecycle_stage == "active"
    assert copy.info.status == "KILLED" and copy.info.lifecycle_stage == "deleted"
    assert copy.data.tags[store.DUPLICATE_OF_TAG] == kept.info.run_id
    assert copy.info.run_id in caplog.text and "created twice" in caplog.text
    visible = client.search_runs([experiment])
    assert [run.info.run_id for run in visible] == [kept.info.run_id]


def test_a_single_creation_touches_no_other_run_of_the_experiment(tmp_path):
    client = MlflowClient(embedded_store(tmp_path))
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "a").as_uri())
    first = store.create_run(client, experiment, "one", {})
    second = store.create_run(client, experiment, "two", {})
    statuses = {client.get_run(r.info.run_id).info.status for r in (first, second)}
    assert statuses == {"RUNNING"}
    assert first.data.tags[store.CREATION_TAG] != second.data.tags[store.CREATION_TAG]
