"""Toy node functions for tests/hooks/test_tracking.py (module-level so Kedro can run them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from yolo_mlops.tracking import log_epoch

CHILD = "from yolo_mlops.tracking import log_epoch; log_epoch({'child/value': 7.0}, step=0)"


def train_toy(training: dict[str, Any]) -> dict[str, Any]:
    """Logs three epochs, then one metric from a child process (like a KFP task would)."""
    for epoch in range(3):
        log_epoch({"train/loss": 1.0 / (epoch + 1)}, step=epoch)
    subprocess.run([sys.executable, "-c", CHILD], check=True, timeout=120)
    Path("node_ran.txt").write_text("yes")
    return {"images": 8, "instances": 12, "backgrounds": 1, "ok": True}


def evaluate_toy(summary: dict[str, Any]) -> dict[str, float]:
    return {"mAP50": 0.5, "mAP50-95": 0.25, "precision": 0.6, "recall": 0.4, "fitness": 0.3}


def explode(training: dict[str, Any]) -> None:
    raise RuntimeError("boom in node")


def lose_server(training: dict[str, Any]) -> dict[str, Any]:
    """Kills the tracking server (process group in ``$TOY_SERVER_PGID``) mid-run, then logs."""
    import os
    import signal

    os.killpg(int(os.environ["TOY_SERVER_PGID"]), signal.SIGKILL)
    log_epoch({"train/loss": 1.0}, step=0)  # finds the server gone
    Path("node_ran.txt").write_text("yes")
    return {"images": 8, "instances": 12, "backgrounds": 1, "ok": True}
