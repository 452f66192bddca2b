"""Shared test fixtures.

Every test runs with the network closed: sockets may connect to loopback only, so nothing but an
HTTP server that a test starts on 127.0.0.1 can be reached.

Every test, and every process a test starts, runs with a temporary home: ``HOME``, the XDG
folders, the weights cache, and the folders of matplotlib, torch, MLflow, DVC, Kedro and Jupyter
point into one folder made for the session and removed after it, so no test reads or writes the
user's real home (``.ci/run`` checks that nothing under it changed during the suite).
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
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

#: The session's temporary home (set before any test module imports matplotlib, torch or mlflow).
TEST_HOME = Path(tempfile.mkdtemp(prefix="yolo-mlops-test-home-"))
HOME_ENV = {
    "HOME": TEST_HOME,
    "XDG_CACHE_HOME": TEST_HOME / ".cache",
    "XDG_CONFIG_HOME": TEST_HOME / ".config",
    "XDG_DATA_HOME": TEST_HOME / ".local/share",
    "XDG_STATE_HOME": TEST_HOME / ".local/state",
    "YOLO_MLOPS_WEIGHTS_DIR": TEST_HOME / ".cache/yolo-mlops/weights",
    "MPLCONFIGDIR": TEST_HOME / ".config/matplotlib",
    "TORCH_HOME": TEST_HOME / ".cache/torch",
    "TORCHINDUCTOR_CACHE_DIR": TEST_HOME / ".cache/torchinductor",
    "TRITON_CACHE_DIR": TEST_HOME / ".cache/triton",
    "DVC_GLOBAL_CONFIG_DIR": TEST_HOME / ".config/dvc",
    "DVC_SITE_CACHE_DIR": TEST_HOME / ".cache/dvc",
    "JUPYTER_CONFIG_DIR": TEST_HOME / ".jupyter",
    "JUPYTER_DATA_DIR": TEST_HOME / ".local/share/jupyter",
    "IPYTHONDIR": TEST_HOME / ".ipython",
    "PIP_CACHE_DIR": TEST_HOME / ".cache/pip",
}
for _name, _path in HOME_ENV.items():
    _path.mkdir(parents=True, exist_ok=True)
    os.environ[_name] = str(_path)
for _name, _value in {
    "GIT_AUTHOR_NAME": "tests",
    "GIT_AUTHOR_EMAIL": "tests@localhost",
    "GIT_COMMITTER_NAME": "tests",
    "GIT_COMMITTER_EMAIL": "tests@localhost",
}.items():
    os.environ.setdefault(_name, _value)  # git commits in tests need no ~/.gitconfig
atexit.register(shutil.rmtree, TEST_HOME, ignore_errors=True)

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


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """A 2 MiB tmpfs (needs root and a kernel that allows the mount; skipped otherwise)."""
    folder = tmp_path / "tmpfs"
    folder.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)]
    try:
        done = subprocess.run(mount, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        pytest.skip("no mount command here")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=False)
