"""Run bookkeeping against a real ``mlflow server``: kill -9, concurrent runs, resume, register."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.tracking.helpers import start_mlflow_server, stop
from yolo_mlops.tracking import orphans
from yolo_mlops.tracking import run as tracking_run
from yolo_mlops.tracking.config import TrackingParams
from yolo_mlops.yolo.train.run_guard import SaveDirBusyError, exclusive_save_dir

pytestmark = pytest.mark.integration

HOLDER = """
import sys, time
from pathlib import Path
from yolo_mlops.tracking import orphans, run as tracking_run
from yolo_mlops.tracking.config import TrackingParams
from yolo_mlops.yolo.train.run_guard import exclusive_save_dir

params = TrackingParams(uri=sys.argv[1], experiment="orphans")
tracking_run.start_or_join(params, Path.cwd(), "killed-training", {})
with exclusive_save_dir(Path(sys.argv[2]), orphans.checkpoint_meta()):
    Path(sys.argv[3]).write_text(tracking_run.current_run_id())
    time.sleep(600)  # "training"
"""


def _start(uri: str, name: str) -> tracking_run.TrackedRun:
    run = tracking_run.start_or_join(TrackingParams(uri=uri, experiment="orphans"), Path.cwd(),
                                     name, {})  # fmt: skip
    assert run is not None
    return run


def test_killed_run_is_marked_killed_and_a_concurrent_run_gets_a_clear_error(
    mlflow_server, tmp_path
):
    model_dir, ready = tmp_path / "run", tmp_path / "ready"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, mlflow_server, str(model_dir), str(ready)]
    )
    try:
        deadline = time.monotonic() + 180
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        killed_id = ready.read_text()
        with (
            pytest.raises(SaveDirBusyError, match=r"being written by another training run"),
            exclusive_save_dir(model_dir),
        ):
            pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    client = MlflowClient(mlflow_server)
    assert client.get_run(killed_id).info.status == "RUNNING"  # what kill -9 leaves behind
    run = _start(mlflow_server, "next-training")
    with exclusive_save_dir(model_dir, orphans.checkpoint_meta()) as previous:
        assert orphans.close_stale(previous, model_dir) == "KILLED"
    killed = client.get_run(killed_id)
    assert killed.info.status == "KILLED"
    assert run.run_id in killed.data.tags["stale.reason"]
    tracking_run.end("FINISHED")


def test_resume_links_both_runs_and_register_uses_the_training_run(mlflow_server):
    client = MlflowClient(mlflow_server)
    trained = _start(mlflow_server, "training")
    checkpoint = {"config": orphans.checkpoint_meta()}
    tracking_run.end("KILLED")
    resumed = _start(mlflow_server, "resumed")
    assert orphans.link_resume(checkpoint) == trained.run_id
    assert client.get_run(resumed.run_id).data.tags[orphans.RESUMED_FROM_TAG] == trained.run_id
    assert client.get_run(trained.run_id).data.tags[orphans.RESUMED_BY_TAG] == resumed.run_id
    target = orphans.training_run(checkpoint, resumed)
    assert target.run_id == trained.run_id
    assert client.get_run(resumed.run_id).data.tags[orphans.TRAINED_IN_TAG] == trained.run_id
    tracking_run.end("FINISHED")


def test_a_run_that_lost_its_server_before_training_is_still_named_by_the_checkpoint(tmp_path):
    """The server died right after the run was created: logging stops, but the checkpoints
    name the run, so the recovery command (a new run, server back) registers into it."""
    process, uri = start_mlflow_server(tmp_path, own_group=True)
    try:
        lost = _start(uri, "training")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    tracking_run.set_tags({"after": "the kill"})  # the first call that finds the server gone
    assert tracking_run.current() is None and tracking_run.lost_reason()
    checkpoint = {"config": orphans.checkpoint_meta()}
    assert orphans.recorded_run_id(checkpoint["config"]) == lost.run_id
    tracking_run.end("FINISHED")

    process, uri = start_mlflow_server(tmp_path)  # back, on the same store
    try:
        recovery = _start(uri, "register")
        assert orphans.training_run(checkpoint, recovery).run_id == lost.run_id
        tracking_run.end("FINISHED")
    finally:
        stop(process)


def test_register_stays_in_its_run_when_the_training_run_is_unknown(mlflow_server):
    current = _start(mlflow_server, "register-only")
    checkpoint = {"config": {"tracking": {"run_id": "0" * 32}}}
    assert orphans.training_run(checkpoint, current).run_id == current.run_id
    tracking_run.end("FINISHED")


def test_the_lock_records_how_its_holder_ended(tmp_path):
    import json

    with exclusive_save_dir(tmp_path):
        pass
    assert json.loads((tmp_path / ".train.lock").read_text())["outcome"] == "finished"
    with pytest.raises(KeyboardInterrupt), exclusive_save_dir(tmp_path):
        raise KeyboardInterrupt("second SIGINT: training stopped at once")
    record = json.loads((tmp_path / ".train.lock").read_text())
    assert record["released"] and record["outcome"].startswith("KeyboardInterrupt: second SIGINT")


@pytest.mark.parametrize(
    ("record", "status", "reason"),
    [
        ({"released": False}, "KILLED", "killed (SIGKILL, out of memory...)"),
        ({"released": True, "outcome": "KeyboardInterrupt: SIGTERM"}, "KILLED",
         "stopped on KeyboardInterrupt: SIGTERM"),
        ({"released": True, "outcome": "ValueError: bad"}, "FAILED", "stopped on ValueError: bad"),
        ({"released": True, "outcome": "finished"}, "FAILED", "tracking server was unreachable"),
    ],
)  # fmt: skip
def test_a_stale_run_is_closed_with_the_reason_its_holder_really_ended(record, status, reason):
    found_status, why = orphans.stale_reason(record)
    assert found_status == status and reason in why
