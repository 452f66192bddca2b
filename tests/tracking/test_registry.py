"""Model logging, registry aliases and the gate's tags, loading in a fresh process, serving
(PyTorch and ONNX Runtime backends), the export parity gate."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import COCO128_ZIP, PROJECT_ROOT
from tests.tracking.helpers import (
    embedded_store,
    free_port,
    sample_image,
    sent_twice,
    start_run,
    wait_http,
)
from yolo_mlops.tracking import run as tracking_run
from yolo_mlops.tracking.model_files import ExportedModels, pinned_requirements
from yolo_mlops.tracking.promotion import PromotionPolicy
from yolo_mlops.tracking.registry import Registration, log_and_register

MODEL = "yolo11n-test"
ONNX_MODEL = "yolo11n-test-onnx"


def test_pip_requirements_are_pinned_without_local_version_tags():
    pins = pinned_requirements()
    names = {pin.split("==")[0] for pin in pins}
    assert {"torch", "mlflow", "numpy", "pandas", "opencv-python-headless"} <= names
    assert all("==" in pin and "+" not in pin for pin in pins)


def test_onnxruntime_requirements_leave_torch_out():
    names = {pin.split("==")[0] for pin in pinned_requirements("onnxruntime")}
    assert {"onnxruntime", "mlflow", "numpy", "pandas", "opencv-python-headless"} <= names
    assert not names & {"torch", "torchvision"}


@pytest.fixture(scope="module")
def registered(mlflow_server, checkpoint, tmp_path_factory):
    """Three versions on the live server: 0.30 (champion), 0.40 (promoted), 0.35 (not)."""
    project = tmp_path_factory.mktemp("registry_project")
    records = []
    for map50_95 in (0.30, 0.40, 0.35):
        start_run(mlflow_server, project, experiment="registry-test")
        metrics = {"mAP50": map50_95 + 0.2, "mAP50-95": map50_95}
        records.append(
            log_and_register(
                tracking_run.current(),
                checkpoint,
                metrics,
                Registration(MODEL, PromotionPolicy(min_improvement=0.01, min_map50_95=0.1)),
            )
        )
        tracking_run.end()
    return records


@pytest.mark.integration
def test_a_version_registered_twice_by_a_retried_request_is_kept_once(
    checkpoint, tmp_path, monkeypatch
):
    """MLflow's client retries POSTs: a server that stored the version and died before
    answering stores it again. The copy (same source, same run) is deleted."""
    start_run(embedded_store(tmp_path), tmp_path, experiment="retried")
    sent_twice(monkeypatch, "_create_model_version")
    metrics = {"mAP50": 0.5, "mAP50-95": 0.3}
    record = log_and_register(tracking_run.current(), checkpoint, metrics,
                              Registration("retried"), tmp_path)  # fmt: skip
    client = MlflowClient(tracking_run.current().uri)
    versions = client.search_model_versions("name = 'retried'")
    assert [str(v.version) for v in versions] == [record["version"]] == ["2"]
    assert str(client.get_model_version_by_alias("retried", "champion").version) == "2"


@pytest.mark.integration
def test_promotion_moves_champion_only_for_a_better_challenger(mlflow_server, registered):
    client = MlflowClient(mlflow_server)
    assert [r["promotion"]["promoted"] for r in registered] == [True, True, False]
    assert client.get_model_version_by_alias(MODEL, "champion").version == registered[1]["version"]
    assert (
        client.get_model_version_by_alias(MODEL, "challenger").version == (registered[2]["version"])
    )
    third = client.get_model_version(MODEL, registered[2]["version"])
    # the decision is the first tag and fits the registry's narrow version list uncut
    assert third.tags["promoted"] == "no"
    assert "promotion.decision" not in third.tags
    assert float(third.tags["promotion.champion_mAP50-95_before"]) == pytest.approx(0.40)
    assert third.tags["run_id"] == registered[2]["run_id"]
    assert float(third.tags["mAP50-95"]) == pytest.approx(0.35)
    assert {"mAP50", "dataset_sha256", "git_commit"} <= set(third.tags)
    run = client.get_run(registered[2]["run_id"])
    assert run.data.tags["promotion.decision"] == "not_promoted"
    assert run.data.metrics["verdict/champion_before_mAP50-95"] == pytest.approx(0.40)


LOAD_SCRIPT = """
import json, sys
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
data = open(sys.argv[2], "rb").read()
out = model.predict(pd.DataFrame({"image": [data]}), params={"conf": 0.0, "max_det": 4})
import yolo_mlops
print(json.dumps({"rows": out.to_dict("records"), "module": yolo_mlops.__file__}))
"""


@pytest.mark.integration
def test_champion_loads_and_predicts_in_a_fresh_process(mlflow_server, registered, tmp_path):
    image, (height, width) = sample_image(COCO128_ZIP)
    (tmp_path / "image.jpg").write_bytes(image)
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_RUN_ID", None)
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, f"models:/{MODEL}@champion", tmp_path / "image.jpg"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    rows = payload["rows"]
    assert len(rows) == 4
    assert all(0 <= r["x1"] <= r["x2"] <= width and 0 <= r["y1"] <= r["y2"] <= height for r in rows)
    assert "/code/yolo_mlops/" in payload["module"]  # the project code shipped with the model


def _post(url: str, body: dict) -> tuple[int, str]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def documented_serve_command(model: str, port: int) -> str:
    """The serve command of docs/mlflow.md, for ``model`` on ``port`` (run as written: the
    venv's ``bin`` is not on the test's ``PATH``)."""
    docs = (PROJECT_ROOT / "docs/mlflow.md").read_text()
    (line,) = [line for line in docs.splitlines() if "mlflow models serve -m" in line]
    line = line.replace("models:/yolo11n-coco128@champion", f"models:/{model}@champion")
    return line.replace("-p 5001", f"-p {port}")


def _assert_over_budget_is_refused_fast(url: str) -> None:
    """Rows of a ~100 KB 6000x6000 PNG past the default (machine-sized) pixel budget: a 400
    naming the budget, answered without decoding them."""
    import cv2
    import numpy as np

    from yolo_mlops.tracking.pyfunc_model import request_pixel_budget

    _, png = cv2.imencode(".png", np.zeros((6000, 6000, 3), np.uint8))
    rows = request_pixel_budget() // (6000 * 6000) + 1
    data = [[base64.b64encode(png.tobytes()).decode()]] * rows
    start = time.perf_counter()
    status, text = _post(url, {"dataframe_split": {"columns": ["image"], "data": data}})
    assert status == 400 and "max_request_pixels" in json.loads(text)["message"], text
    assert time.perf_counter() - start < 5.0  # JSON parsing included; decoding would take minutes


@contextmanager
def _serving(model: str, tmp_path: Path, mlflow_server: str) -> Iterator[str]:
    """``models:/<model>@champion`` served by the documented command; yields its base URL."""
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_RUN_ID", None)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    if not (tmp_path / ".venv").exists():
        (tmp_path / ".venv").symlink_to(Path(sys.executable).parents[1])  # the README's venv
    command = ["bash", "-c", documented_serve_command(model, port)]
    with (tmp_path / "serve.log").open("w") as log:
        server = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        try:
            wait_http(f"http://127.0.0.1:{port}/ping", 180, server)
        except RuntimeError:
            pytest.fail((tmp_path / "serve.log").read_text()[-3000:])
        yield f"http://127.0.0.1:{port}"
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)


@pytest.mark.integration
def test_served_champion_answers_detections_and_4xx_for_garbage(
    mlflow_server, registered, tmp_path
):
    with _serving(MODEL, tmp_path, mlflow_server) as base:
        image, _ = sample_image(COCO128_ZIP)
        url = f"{base}/invocations"
        split = {"columns": ["image"], "data": [[base64.b64encode(image).decode()]]}
        status, text = _post(url, {"dataframe_split": split, "params": {"conf": 0.0, "max_det": 3}})
        assert status == 200, text
        predictions = json.loads(text)["predictions"]
        assert len(predictions) == 3
        assert set(predictions[0]) == {
            "image_index", "class_id", "class_name", "score", "x1", "y1", "x2", "y2",
        }  # fmt: skip
        garbage = {"columns": ["image"], "data": [[base64.b64encode(b"garbage").decode()]]}
        status, text = _post(url, {"dataframe_split": garbage})
        assert 400 <= status < 500
        assert "row 0" in json.loads(text)["message"]
        not_base64 = {"columns": ["image"], "data": [[split["data"][0][0]], ["not base64!"]]}
        status, text = _post(url, {"dataframe_split": not_base64})
        message = json.loads(text)["message"]  # MLflow prefixes "Failed to predict data ..."
        assert status == 400 and "Error: row 1: " in message and "not base64" in message, text
        assert "Incorrect padding" not in message
        _assert_over_budget_is_refused_fast(url)


@pytest.fixture(scope="module")
def registered_onnx(mlflow_server, tmp_path_factory):
    """Two ONNX Runtime versions of the small model: the first (parity passed) is champion; the
    second has a higher mAP50-95 but an export report saying its fp32 parity failed."""
    from tests.tracking.export_helpers import export_report, export_small_model, small_checkpoint

    project = tmp_path_factory.mktemp("onnx_project")
    onnx = export_small_model(project / "export")
    registration = Registration(ONNX_MODEL, PromotionPolicy(), serving_backend="onnxruntime")
    records = []
    for map50_95, passed in ((0.30, True), (0.50, False)):
        start_run(mlflow_server, project, experiment="registry-onnx-test")
        exported = ExportedModels({onnx.name: onnx}, export_report(onnx, passed=passed))
        records.append(
            log_and_register(
                tracking_run.current(),
                small_checkpoint(),
                {"mAP50": map50_95 + 0.2, "mAP50-95": map50_95},
                registration,
                project,
                exported=exported,
            )
        )
        tracking_run.end()
    return records


@pytest.mark.integration
def test_a_version_whose_export_failed_parity_is_not_promoted(mlflow_server, registered_onnx):
    first, second = registered_onnx
    assert first["promotion"]["promoted"] and not second["promotion"]["promoted"]
    assert "export failed parity" in second["promotion"]["reason"]
    client = MlflowClient(mlflow_server)
    assert client.get_model_version_by_alias(ONNX_MODEL, "champion").version == first["version"]
    card = client.get_model_version(ONNX_MODEL, second["version"]).description
    assert card.startswith("Not promoted: export failed parity")
    assert "parity FAILED (gated)" in card and "### Files (serving backend: onnxruntime)" in card


@pytest.mark.integration
def test_onnx_version_carries_the_exports_and_no_torch_requirement(mlflow_server, registered_onnx):
    import mlflow

    first = registered_onnx[0]
    assert first["serving_backend"] == "onnxruntime"
    mlflow.set_tracking_uri(mlflow_server)
    try:
        folder = Path(mlflow.artifacts.download_artifacts(first["logged_model_uri"]))
    finally:
        mlflow.set_tracking_uri(None)
    requirements = (folder / "requirements.txt").read_text().splitlines()
    names = {line.split("==")[0] for line in requirements if "==" in line}
    assert "onnxruntime" in names and not names & {"torch", "torchvision"}, requirements
    artifacts = {path.name for path in (folder / "artifacts").iterdir()}
    assert {"model.onnx", "model.pt", "export.json"} <= artifacts, artifacts
    assert "backend: onnxruntime" in (folder / "MLmodel").read_text()


@pytest.mark.integration
def test_served_onnx_champion_answers_curl(mlflow_server, registered_onnx, tmp_path):
    from tests.tracking.helpers import synthetic_jpeg

    body = {"dataframe_split": {"columns": ["image"],
                                "data": [[base64.b64encode(synthetic_jpeg()).decode()]]},
            "params": {"conf": 0.0, "max_det": 3}}  # fmt: skip
    (tmp_path / "body.json").write_text(json.dumps(body))
    with _serving(ONNX_MODEL, tmp_path, mlflow_server) as base:
        done = subprocess.run(
            ["curl", "-sS", "-H", "Content-Type: application/json", "--data",
             f"@{tmp_path / 'body.json'}", f"{base}/invocations"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    predictions = json.loads(done.stdout)["predictions"]
    assert len(predictions) == 3 and {p["class_name"] for p in predictions} <= {
        "cat", "dog", "bird",
    }  # fmt: skip
