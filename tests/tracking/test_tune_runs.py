"""A trial's MLflow logging is strict (its trial fails), the study's bookkeeping never raises.

The child runs themselves (parent tag, per-epoch metrics, final state) are checked end to end in
tests/pipelines/tune/test_search.py.
"""

from __future__ import annotations

import socket

import pytest

from yolo_mlops.tracking import tune_runs


@pytest.fixture
def closed_port_uri() -> str:
    """An HTTP tracking URI on a 127.0.0.1 port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_trial_logging_to_an_unreachable_server_raises_a_trial_error(closed_port_uri):
    with pytest.raises(tune_runs.TrialTrackingError, match="unreachable"):
        tune_runs.log_trial_epoch(closed_port_uri, "run", {"fitness": 0.1}, step=1)
    with pytest.raises(tune_runs.TrialTrackingError, match="unreachable"):
        tune_runs.start_trial_run(closed_port_uri, "parent", "trial-000", {}, {"lr0": 0.01})


def test_study_bookkeeping_on_an_unreachable_server_only_warns(closed_port_uri, caplog):
    assert tune_runs.end_trial_run(closed_port_uri, "run", "COMPLETE") is False
    tune_runs.set_run_tags(closed_port_uri, "run", {"tune.study": "s"})
    assert "could not" in caplog.text
