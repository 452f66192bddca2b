"""A ci-sized `kedro run` against the team stack: its run in PostgreSQL, its files in S3, its
version loadable by a READ-only account that cannot move aliases; no secret anywhere it wrote;
a tracking server killed mid-run and restarted leaves one version and no RUNNING run."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3
import mlflow.artifacts
import psycopg
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from tests.conftest import PROJECT_ROOT
from yolo_mlops.ingestion.synthetic import SyntheticSpec, write_synthetic_dataset, zip_dataset
from yolo_mlops.tracking.team_access import Account, signed_in

pytestmark = pytest.mark.integration

MODEL = "yolo11n-coco128"
RECOVERY = "kedro run --pipelines register --env ci"


@dataclass
class CiRun:
    """The project copy, the kedro output and the registration record of the first run."""

    project: Path
    env: dict[str, str]
    output: str
    registration: dict


def _kedro(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "kedro", "run", "--env", "ci", *args]
    return subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _project(root: Path) -> Path:
    """A git project with conf/base and conf/ci (the package is the installed one)."""
    project = root / "project"
    (project / "conf/local").mkdir(parents=True)
    (project / "src").mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project)
    for env in ("base", "ci"):
        shutil.copytree(PROJECT_ROOT / "conf" / env, project / "conf" / env)
    for name in (".gitignore", ".telemetry"):
        shutil.copy(PROJECT_ROOT / name, project)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "snapshot"]):
        subprocess.run(["git", *args], cwd=project, check=True, capture_output=True)
    return project


@pytest.fixture(scope="module")
def ci_run(stack, tmp_path_factory) -> CiRun:
    root = tmp_path_factory.mktemp("team_run")
    dataset = write_synthetic_dataset(root / "synth", SyntheticSpec(n_images=8), seed=0)
    archive = zip_dataset(dataset.parent, root / "coco128.zip", top_level="coco128")
    project = _project(root)
    env = {
        **stack.env("pipeline"),
        "YOLO_MLOPS_DATA_SOURCE": str(archive),
        "YOLO_MLOPS_DATA_SHA256": "null",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "COLUMNS": "500",  # rich wraps log lines at 80 columns without a terminal
    }
    done = _kedro(project, env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    record = json.loads((project / "data/08_reporting/registration.json").read_text())
    return CiRun(project, env, output, record)


def _database(stack):
    port, password = stack.record["postgres"]["port"], stack.secrets()["mlflow_db"]
    dsn = f"host=127.0.0.1 port={port} user=mlflow dbname=mlflow"
    return psycopg.connect(dsn, password=password)


def _runs_in_database(stack) -> dict[str, str]:
    """``{run id: status}`` of every run, read from PostgreSQL directly."""
    with _database(stack) as conn:
        return dict(conn.execute("SELECT run_uuid, status FROM runs").fetchall())


def _bucket_keys(stack) -> list[str]:
    s3 = boto3.client(
        "s3", endpoint_url=stack.record["seaweedfs"]["endpoint"], region_name="us-east-1",
        aws_access_key_id="team-admin", aws_secret_access_key=stack.secrets()["s3_admin_secret"],
    )  # fmt: skip
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="mlflow", Prefix="artifacts/")
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def test_the_run_is_in_postgresql_and_its_files_in_the_s3_bucket(stack, ci_run):
    run_id = ci_run.registration["run_id"]
    assert _runs_in_database(stack)[run_id] == "FINISHED"
    keys = _bucket_keys(stack)
    run_files = {key.split(f"{run_id}/artifacts/")[1] for key in keys if f"/{run_id}/" in key}
    assert {"params.yaml", "reports/metrics.json", "reports/training_history.csv"} <= run_files
    model_id = ci_run.registration["logged_model_id"]
    assert any(key.endswith(f"models/{model_id}/artifacts/MLmodel") for key in keys)
    assert any(f"models/{model_id}/artifacts/" in key and key.endswith(".pt") for key in keys)


def test_an_unauthenticated_request_is_refused_with_401(stack):
    url = f"{stack.record['mlflow']['uri']}/api/2.0/mlflow/registered-models/get?name={MODEL}"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=30)
    assert refused.value.code == 401


LOAD_CHAMPION = """
import sys, mlflow
model = mlflow.pyfunc.load_model(f"models:/{sys.argv[1]}@champion")
print("loaded", model.metadata.model_uuid)
"""


def test_a_reader_loads_the_champion_in_another_process_but_cannot_move_it(stack, ci_run):
    reader = stack.env("reader")
    done = subprocess.run(
        [sys.executable, "-c", LOAD_CHAMPION, MODEL], env=reader, capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    assert "loaded" in done.stdout
    client = MlflowClient(reader["MLFLOW_TRACKING_URI"])
    with signed_in(Account("reader", reader["MLFLOW_TRACKING_PASSWORD"])):
        assert client.get_model_version_by_alias(MODEL, "champion").version
        with pytest.raises(MlflowException) as refused:
            client.set_registered_model_alias(MODEL, "champion", ci_run.registration["version"])
    assert refused.value.get_http_status_code() == 403


def _texts_of_run(client: MlflowClient, registration: dict, folder: Path) -> str:
    """Params, tags and every file of the run and of its logged model, as text."""
    run = client.get_run(registration["run_id"])
    run_dir = client.download_artifacts(run.info.run_id, "", str(folder / "run"))
    logged = client.get_logged_model(registration["logged_model_id"])
    model_dir = mlflow.artifacts.download_artifacts(
        artifact_uri=logged.artifact_location,  # mlflow-artifacts:/..., through the server
        dst_path=str(folder / "model"),
        tracking_uri=client.tracking_uri,
    )
    parts = [json.dumps(run.data.params), json.dumps(run.data.tags)]
    for path in [*Path(run_dir).rglob("*"), *Path(model_dir).rglob("*")]:
        if path.is_file():
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def test_no_secret_in_params_artifacts_logs_or_the_project(stack, ci_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a wrong store resolution must not touch the checkout
    values = [value for key, value in stack.secrets().items() if key != "flask_secret"]
    client = MlflowClient(ci_run.env["MLFLOW_TRACKING_URI"])
    with signed_in(Account("pipeline", ci_run.env["MLFLOW_TRACKING_PASSWORD"])):
        texts = _texts_of_run(client, ci_run.registration, tmp_path)
    logs = "\n".join(p.read_text(errors="replace") for p in (stack.state / "logs").iterdir())
    tracked = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ci_run.project, capture_output=True,
        text=True, check=True,
    ).stdout.split()  # fmt: skip
    project = "\n".join((ci_run.project / name).read_text(errors="replace") for name in tracked)
    for where, text in {"run": texts, "logs": logs + ci_run.output, "project": project}.items():
        leaked = [value[:4] + "..." for value in values if value in text]
        assert not leaked, f"secrets found in the {where}: {leaked}"


def _wait_for_new_run(stack, known: set[str], timeout_s: float = 300) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        new = set(_runs_in_database(stack)) - known
        if new:
            return new.pop()
        time.sleep(0.2)
    raise TimeoutError("the pipeline created no run")


def _lifecycle(stack, run_id: str) -> tuple[str, str]:
    """``(status, lifecycle stage)`` of a run, read from PostgreSQL directly."""
    with _database(stack) as conn:
        query = "SELECT status, lifecycle_stage FROM runs WHERE run_uuid = %s"
        return conn.execute(query, (run_id,)).fetchone()


def test_a_server_killed_mid_run_leaves_one_version_and_no_running_run(
    stack, ci_run, monkeypatch, record_property
):
    """Killed right after the run is stored and restarted at once: the call in flight retries
    (``MLFLOW_HTTP_REQUEST_*`` of pipeline.env) and the run resumes, or a call that found the
    server gone ends the pipeline with the recovery command, which registers the model. Either
    way: one new version, in the run that trained it, and no RUNNING run. When the kill fell
    between storing the run and answering, the retried creation stored a copy: the copy the
    pipeline never heard of is ended and deleted."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # this test's own calls fail fast
    client = MlflowClient(ci_run.env["MLFLOW_TRACKING_URI"])
    with signed_in(Account("pipeline", ci_run.env["MLFLOW_TRACKING_PASSWORD"])):
        before = {v.version for v in client.search_model_versions(f"name = '{MODEL}'")}
    known = set(_runs_in_database(stack))
    command = [sys.executable, "-m", "kedro", "run", "--env", "ci"]
    pipeline = subprocess.Popen(
        command, cwd=ci_run.project, env=ci_run.env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    first_stored = _wait_for_new_run(stack, known)
    server = stack.script.files.read_json(stack.state / "stack.json")["mlflow"]["pid"]
    os.killpg(server, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while stack.script.processes.alive(server, "mlflow") and time.monotonic() < deadline:
        time.sleep(0.05)  # gone before start looks, or start would find it running
    stack.script.start(stack.state)  # restarts the tracking server only, on the same port
    uri = stack.script.role_env(stack.state, "pipeline")["MLFLOW_TRACKING_URI"]
    assert uri == ci_run.env["MLFLOW_TRACKING_URI"]
    output, _ = pipeline.communicate(timeout=600)
    trained = re.findall(r"MLflow: started run (\w+)", output)
    assert len(trained) == 1, output[-4000:]
    record_property("after_the_kill", "recovered" if pipeline.returncode else "resumed")
    record_property("creation", "retried" if first_stored != trained[0] else "answered")
    if pipeline.returncode != 0:  # tracking was lost: the recovery command it names
        assert RECOVERY in output, output[-4000:]
        recovered = _kedro(ci_run.project, ci_run.env, "--pipelines", "register")
        assert recovered.returncode == 0, (recovered.stdout + recovered.stderr)[-4000:]

    with signed_in(Account("pipeline", ci_run.env["MLFLOW_TRACKING_PASSWORD"])):
        versions = client.search_model_versions(f"name = '{MODEL}'")
    new = [v for v in versions if v.version not in before]
    assert [v.run_id for v in new] == trained  # registered once, into the run it trained in
    assert _lifecycle(stack, trained[0]) == ("FINISHED", "active")
    if first_stored != trained[0]:
        assert _lifecycle(stack, first_stored) == ("KILLED", "deleted")
    assert "RUNNING" not in _runs_in_database(stack).values()
