"""The stack's processes: free ports on 127.0.0.1, liveness by pid and command line, readiness
waits, spawning in a session of their own and ending that session."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

logger = logging.getLogger("team_stack")


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports on 127.0.0.1."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count < 65535 and all(port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def same_or_free_port(previous: dict[str, Any] | None, wait_s: float = 15) -> int:
    """The port a restarted service had (clients keep their URI), else a free one. Waits up to
    ``wait_s`` for the old port: the killed service's workers may still hold it a moment."""
    port = (previous or {}).get("port")
    deadline = time.monotonic() + wait_s
    while port:
        if port_free(port):
            return port
        if time.monotonic() > deadline:
            logger.warning("port %s is still taken; using another one", port)
            break
        time.sleep(0.2)
    return free_ports(1)


def alive(pid: int | None, marker: str) -> bool:
    """Whether ``pid`` runs and its command line contains ``marker`` (not a reused pid)."""
    if not pid:
        return False
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False


def wait(check, what: str, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before it was ready")
        if check():
            return
        time.sleep(0.3)
    raise TimeoutError(f"{what} was not ready within {timeout_s:.0f} s")


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except OSError as error:
        return getattr(error, "code", 500) < 500


def spawn(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start ``command`` in its own session (so stop can end its workers), output to ``log``."""
    with log.open("a") as handle:
        return subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip


def end_group(pid: int | None, marker: str, timeout_s: float = 15) -> None:
    """SIGTERM the process group ``start`` created, SIGKILL what is left after ``timeout_s``."""
    if not alive(pid, marker):
        return
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and alive(pid, marker):
            time.sleep(0.2)
        if not alive(pid, marker):
            return
