"""Shared test fixtures.

Every test runs with the network closed: sockets may connect to loopback only, so nothing but an
HTTP server that a test starts on 127.0.0.1 can be reached.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from yolo_mlops.ingestion.synthetic import SyntheticSpec, write_synthetic_dataset

for _name, _value in {
    "KEDRO_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK": "true",
}.items():
    os.environ.setdefault(_name, _value)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"
COCO128_ZIP = SHARED / "data" / "coco128.zip"
REFERENCE_DIR = SHARED / "reference"

_LOOPBACK = {"127.0.0.1", "::1", "localhost", "0.0.0.0", "::"}
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_create_connection = socket.create_connection


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) else address
    return str(host) in _LOOPBACK or str(host).startswith("127.")


class NetworkBlockedError(RuntimeError):
    """Raised when a test tries to reach anything but loopback."""


def _guard(address) -> None:
    if not _is_local(address):
        raise NetworkBlockedError(
            f"network access to {address!r} is blocked in tests (loopback only)"
        )


def _connect(self, address):
    _guard(address)
    return _real_connect(self, address)


def _connect_ex(self, address):
    _guard(address)
    return _real_connect_ex(self, address)


def _create_connection(address, *args, **kwargs):
    _guard(address)
    return _real_create_connection(address, *args, **kwargs)


@pytest.fixture(autouse=True, scope="session")
def _block_network():
    """Close the network for the whole session; loopback stays open."""
    socket.socket.connect = _connect
    socket.socket.connect_ex = _connect_ex
    socket.create_connection = _create_connection
    yield
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex
    socket.create_connection = _real_create_connection


@pytest.fixture
def synthetic_dataset(tmp_path: Path) -> Path:
    """A tiny COCO128-shaped dataset (8 images, 1 background, 1 orphan label); returns its YAML."""
    return write_synthetic_dataset(tmp_path / "synthetic", SyntheticSpec(), seed=0)


@pytest.fixture
def coco128_zip() -> Path:
    """The real COCO128 archive; skips the test when ``../shared`` is absent."""
    if not COCO128_ZIP.is_file():
        pytest.skip(f"needs the real COCO128 archive at {COCO128_ZIP}")
    return COCO128_ZIP


@pytest.fixture
def reference_dir() -> Path:
    """Ultralytics-made reference files; skips the test when ``../shared`` is absent."""
    if not (REFERENCE_DIR / "yolo11n_reference.pt").is_file():
        pytest.skip(f"needs the reference files in {REFERENCE_DIR}")
    return REFERENCE_DIR
