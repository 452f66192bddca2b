"""Run ``torchrun`` for the ``train_model`` node and turn a failed rank into the node's error.

:func:`run_torchrun` logs the output of torchrun and its workers line by line (``[torchrun]``),
kills them all past a time limit or on Ctrl-C, and raises :class:`DistributedTrainingError` with
the failing rank's own message: a worker that raises logs one ``FAILURE_MARKER`` line (see
``worker.py``), a worker that dies is named by torchrun's "Root Cause" block.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TextIO

logger = logging.getLogger(__name__)

#: A worker that raises logs one line ``<marker> rank=<r> <Type>: <message>`` (see worker.py).
FAILURE_MARKER = "YOLO_MLOPS_RANK_FAILED"
_TAIL_LINES = 200


class DistributedTrainingError(RuntimeError):
    """The multi-process training failed (a rank raised, was killed, or timed out)."""


def _failure_message(returncode: int, tail: Sequence[str], failures: Sequence[str]) -> str:
    """The failing rank's own message, else torchrun's account of how it died.

    torchrun names the first rank that failed ("Root Cause"); the other ranks usually fail
    after it with a connection error, so the root cause's own message wins, then its exit code
    or signal (a killed worker logs nothing), then the first rank message seen.
    """
    text = "\n".join(tail)
    root = text.rsplit("Root Cause", 1)[1] if "Root Cause" in text else ""
    rank = re.search(r"rank\s*:\s*(\d+)", root)
    by_rank = {m.group(1): line for line in failures if (m := re.match(r"rank=(\d+)", line))}
    if rank and rank.group(1) in by_rank:
        return by_rank[rank.group(1)]
    if rank:
        exitcode = re.search(r"exitcode\s*:\s*(-?\d+)", root)
        what = f"rank {rank.group(1)} exited with code {exitcode.group(1) if exitcode else '?'}"
        if signal_name := re.search(r"Signal \d+ \((\w+)\) received", root):
            what += f" ({signal_name.group(1)})"
        return what + (f"; then {failures[0]}" if failures else "")
    if failures:
        return failures[0]
    last = [line for line in tail if line.strip()][-15:]
    return f"torchrun exited with status {returncode}; last output:\n" + "\n".join(last)


def _stop(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Terminate torchrun and its workers (their own process group), then kill."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


class _Output:
    """torchrun's output, read on a thread: every line logged, the last ones kept, and the
    failure lines of the ranks (``FAILURE_MARKER``) collected."""

    def __init__(self, stream: TextIO) -> None:
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self.failures: list[str] = []
        self._reader = threading.Thread(
            target=self._pump, args=(stream,), name="torchrun-output", daemon=True
        )
        self._reader.start()

    def _pump(self, stream: TextIO) -> None:
        for raw in stream:
            line = raw.rstrip()
            self.tail.append(line)
            if FAILURE_MARKER in line:
                self.failures.append(line.split(FAILURE_MARKER, 1)[1].strip())
            logger.info("[torchrun] %s", line)

    def join(self) -> None:
        self._reader.join(timeout=5)

    def last_lines(self, count: int = 15) -> str:
        return "\n".join(list(self.tail)[-count:])


def _wait(process: subprocess.Popen, output: _Output, timeout_s: float | None) -> None:
    """Wait for torchrun; past ``timeout_s`` (or on Ctrl-C) stop it and every worker."""
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _stop(process)
        output.join()
        raise DistributedTrainingError(
            f"multi-process training passed its {timeout_s:.0f} s limit and was killed; "
            "last output:\n" + output.last_lines()
        ) from None
    except BaseException:  # KeyboardInterrupt: do not leave workers behind
        _stop(process)
        raise
    output.join()


def run_torchrun(
    command: Sequence[str], env: Mapping[str, str], timeout_s: float | None = None
) -> None:
    """Run ``command`` (torchrun), log its output line by line, raise if a rank fails.

    Args:
        command: the argv (see :func:`worker_command`).
        env: the environment of torchrun and its workers.
        timeout_s: wall-clock limit; torchrun and every worker are killed after it.

    Raises:
        DistributedTrainingError: a rank raised (its message), died (its exit code or signal)
            or the run passed ``timeout_s``.
    """
    logger.info("launching: %s", " ".join(command))
    started = time.monotonic()
    process = subprocess.Popen(
        list(command), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, bufsize=1, start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    output = _Output(process.stdout)
    _wait(process, output, timeout_s)
    if process.returncode != 0:
        raise DistributedTrainingError(
            "multi-process training failed: "
            + _failure_message(process.returncode, list(output.tail), output.failures)
        )
    logger.info("torchrun finished in %.1f s", time.monotonic() - started)
