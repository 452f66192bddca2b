"""run_torchrun: a stuck run is killed, a failed rank is named with its own message."""

from __future__ import annotations

import os
import sys
import time

import pytest

from yolo_mlops.pipelines.train.torchrun import (
    DistributedTrainingError,
    _failure_message,
    run_torchrun,
)

ROOT_CAUSE = """
Root Cause (first observed failure):
[0]:
  time      : 2024-01-01_00:00:00
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 123)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 123
"""


def test_a_run_past_its_time_limit_is_killed():
    started = time.monotonic()
    command = [sys.executable, "-c", "import time; print('working', flush=True); time.sleep(60)"]
    with pytest.raises(DistributedTrainingError, match="limit and was killed"):
        run_torchrun(command, dict(os.environ), timeout_s=3)
    assert time.monotonic() - started < 30


def test_the_root_cause_rank_message_wins_over_the_other_ranks():
    failures = ["rank=0 RuntimeError: connection reset", "rank=1 ValueError: bad shard"]
    message = _failure_message(1, ROOT_CAUSE.splitlines(), failures)
    assert message == "rank=1 ValueError: bad shard"


def test_a_killed_rank_is_named_with_its_exit_code_and_signal():
    message = _failure_message(1, ROOT_CAUSE.splitlines(), [])
    assert message == "rank 1 exited with code -9 (SIGKILL)"


def test_without_a_root_cause_the_last_output_is_shown():
    message = _failure_message(2, ["usage: torchrun ...", "error: bad option"], [])
    assert message.startswith("torchrun exited with status 2") and "bad option" in message
