"""Runs started together in a fresh folder: one creates mlflow.db, the others wait."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

WORKER = """
import json, sys, time
from pathlib import Path
from yolo_mlops.tracking import run as tracking_run
from yolo_mlops.tracking.config import TrackingParams

go, out = Path(sys.argv[1]), Path(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
params = TrackingParams(uri=sys.argv[3], experiment="race", on_unreachable="warn")
run = tracking_run.start_or_join(params, Path(sys.argv[4]), "race", {})
out.write_text(json.dumps({"run": run.run_id if run else None,
                           "reason": tracking_run._state.disabled_reason}))
tracking_run.end("FINISHED")
"""


def test_concurrent_first_runs_all_get_a_tracked_run(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    go = tmp_path / "go"
    outs = [tmp_path / f"out{i}.json" for i in range(4)]
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(go), str(out), uri, str(tmp_path)])
        for out in outs
    ]
    time.sleep(20)  # let every worker import mlflow and wait on the go file
    go.touch()
    for worker in workers:
        assert worker.wait(timeout=300) == 0
    results = [json.loads(out.read_text()) for out in outs]
    assert all(result["run"] for result in results), results
    assert len({result["run"] for result in results}) == len(outs)
