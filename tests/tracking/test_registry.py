"""Model logging, registry aliases and the gate's tags, loading in a fresh process, serving."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import COCO128_ZIP
from tests.tracking.helpers import free_port, sample_image, start_run, wait_http
from yolo_mlops.tracking import run as tracking_run
from yolo_mlops.tracking.promotion import PromotionPolicy
from yolo_mlops.tracking.registry import Registration, log_and_register, pinned_requirements

MODEL = "yolo11n-test"


def test_pip_requirements_are_pinned_without_local_version_tags():
    pins = pinned_requirements()
    names = {pin.split("==")[0] for pin in pins}
    assert {"torch", "mlflow", "numpy", "pandas", "opencv-python-headless"} <= names
    assert all("==" in pin and "+" not in pin for pin in pins)


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
def test_promotion_moves_champion_only_for_a_better_challenger(mlflow_server, registered):
    client = MlflowClient(mlflow_server)
    assert [r["promotion"]["promoted"] for r in registered] == [True, True, False]
    assert client.get_model_version_by_alias(MODEL, "champion").version == registered[1]["version"]
    assert (
        client.get_model_version_by_alias(MODEL, "challenger").version == (registered[2]["version"])
    )
    third = client.get_model_version(MODEL, registered[2]["version"])
    assert third.tags["promotion.decision"] == "not_promoted"
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


@pytest.mark.integration
def test_served_champion_answers_detections_and_4xx_for_garbage(
    mlflow_server, registered, tmp_path
):
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_RUN_ID", None)
    # mlflow serve execs `uvicorn` from PATH: the venv's bin must be on it.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    command = [
        sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL}@champion",
        "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
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
        image, _ = sample_image(COCO128_ZIP)
        url = f"http://127.0.0.1:{port}/invocations"
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
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
