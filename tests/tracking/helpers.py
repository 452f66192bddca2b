"""Test helpers for the tracking layer: a tiny checkpoint, test images, free ports, a server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from yolo_mlops.tracking import run as tracking_run
from yolo_mlops.tracking.config import TrackingParams

NAMES = ["cat", "dog", "bird"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 200; fail early if ``process`` died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout_s} s")


def start_mlflow_server(root: Path, own_group: bool = False) -> tuple[subprocess.Popen, str]:
    """``mlflow server`` on 127.0.0.1 with a sqlite backend and artifact dir under ``root``.

    ``own_group``: start it in its own process group, so a kill -9 of the group takes its workers.
    """
    port = free_port()
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{root / 'backend.db'}",
        "--artifacts-destination", str(root / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=own_group
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{uri}/health", 120, process)
    except Exception:
        process.kill()
        raise
    return process, uri


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=3)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def tiny_checkpoint(imgsz: int = 64) -> dict[str, Any]:
    """A random-weight YOLO11n checkpoint dict with 3 classes (what CheckpointDataset loads)."""
    import torch

    from yolo_mlops.yolo.io.checkpoint import FORMAT, FORMAT_VERSION, make_config
    from yolo_mlops.yolo.model.network import build_model

    torch.manual_seed(0)
    model = build_model("n", num_classes=len(NAMES))
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": make_config(scale="n", nc=len(NAMES), names=NAMES, imgsz=imgsz),
        "state_dict": model.state_dict(),
        "training": None,
    }


def synthetic_jpeg(width: int = 120, height: int = 80) -> bytes:
    """A JPEG with a few coloured rectangles (non-square on purpose)."""
    rng = np.random.default_rng(0)
    image = np.full((height, width, 3), 200, np.uint8)
    for _ in range(3):
        x, y = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
        image[y : y + 20, x : x + 20] = rng.integers(0, 255, 3, dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return encoded.tobytes()


def sample_image(coco128_zip: Path | None) -> tuple[bytes, tuple[int, int]]:
    """The first COCO128 image when the archive is there, else a synthetic JPEG; + (h, w)."""
    if coco128_zip is not None and coco128_zip.is_file():
        with zipfile.ZipFile(coco128_zip) as archive:
            name = sorted(n for n in archive.namelist() if n.endswith(".jpg"))[0]
            data = archive.read(name)
    else:
        data = synthetic_jpeg()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return data, image.shape[:2]


def sent_twice(monkeypatch, method: str) -> None:
    """Make ``MlflowClient.<method>`` send its request twice, as MLflow's retrying client does
    when the server stored the first and died before answering: the caller gets the second
    answer and never hears of the first."""
    from mlflow import MlflowClient

    real = getattr(MlflowClient, method)

    def twice(self, *args, **kwargs):
        real(self, *args, **kwargs)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, method, twice)


def start_run(uri: str, project: Path, **overrides: Any) -> tracking_run.TrackedRun:
    """Start a tracked run on ``uri`` (the state is reset by the autouse fixture)."""
    params = TrackingParams(uri=uri, **overrides)
    run = tracking_run.start_or_join(params, project, "test", {"test": "yes"})
    assert run is not None
    return run


_EMPTY_STORE: list[Path] = []


def embedded_store(project: Path) -> str:
    """Put an empty, already migrated ``mlflow.db`` into ``project``; returns its sqlite URI.

    Creating a sqlite store runs MLflow's migrations (several seconds); they run once per test
    session and each test gets a copy.
    """
    import shutil
    import tempfile

    from mlflow import MlflowClient

    from yolo_mlops.tracking.config import default_tracking_uri

    if not _EMPTY_STORE:
        template = Path(tempfile.mkdtemp(prefix="mlflow-template-")) / "mlflow.db"
        MlflowClient(f"sqlite:///{template}").search_experiments(max_results=1)
        _EMPTY_STORE.append(template)
    project.mkdir(parents=True, exist_ok=True)
    shutil.copy(_EMPTY_STORE[0], project / "mlflow.db")
    return default_tracking_uri(project)
