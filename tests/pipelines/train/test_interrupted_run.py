"""Ctrl-C and SIGTERM on a real `kedro run`: a resumable last.pt, a KILLED MLflow run, a summary
block whose resume command, run as printed, finishes the run and links both MLflow runs."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from mlflow import MlflowClient

from tests.cli_project import KEDRO, make_project
from yolo_mlops.ingestion.synthetic import SyntheticSpec, write_synthetic_dataset, zip_dataset
from yolo_mlops.tracking.orphans import RESUMED_FROM_TAG
from yolo_mlops.yolo.train.run_guard import unfinished_run

pytestmark = pytest.mark.integration

#: 8 training images, batch 2: 4 steps per epoch, 3 epochs.
PARAMS = "training.epochs=3,training.batch=2"
STARTED = "training YOLO11n on cpu"  # the trainer's first line: the epoch loop starts next


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A project whose image cache is built (ingest, validate, preprocess run untracked)."""
    base = tmp_path_factory.mktemp("interrupt")
    write_synthetic_dataset(base / "synth", SyntheticSpec(n_images=8), seed=0)
    archive = zip_dataset(base / "synth", base / "coco128.zip", top_level="coco128")
    project = make_project(base / "project")
    runtime = {
        "tracking": {"enabled": False},
        "data_ingestion": {"source": str(archive), "sha256": None},
    }
    cwd = Path.cwd()
    os.chdir(project)
    try:
        bootstrap_project(project)
        with KedroSession.create(project_path=project, env="ci", runtime_params=runtime) as s:
            s.run(pipeline_names=["ingest", "validate", "preprocess"])
    finally:
        os.chdir(cwd)
    return project


def run_until(command: list[str], cwd: Path, signum: int) -> tuple[int, str]:
    """Run ``command``; send ``signum`` once training has started; (exit code, output)."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if STARTED in line:
                time.sleep(0.5)  # inside the first epoch
                process.send_signal(signum)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code = process.wait(timeout=300)
    finally:
        process.kill()
    reader.join(timeout=10)
    return code, "".join(lines)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_epoch_leaves_a_resumable_run_and_its_command_finishes_it(
    prepared, tmp_path, signum
):
    project = tmp_path / "project"
    shutil.copytree(prepared, project)
    command = [KEDRO, "run", "--env", "ci", "--pipelines", "train", "--params", PARAMS]
    code, output = run_until(command, project, signum)

    assert code == 128 + signum, output
    last = project / "data/06_models/run/last.pt"
    assert unfinished_run(last) is not None, output
    assert f"stopped by {signal.Signals(signum).name}" in output
    assert "run summary: train (env ci) KILLED" in output
    assert "Traceback" not in output
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("yolo-mlops").experiment_id
    runs = client.search_runs([experiment])
    assert len(runs) == 1, output
    killed = runs[0]
    assert killed.info.status == "KILLED"
    assert "TrainingInterrupted" in killed.data.tags["error"]

    recover = [line for line in output.splitlines() if line.startswith("recover with")]
    assert len(recover) == 1, output
    resume = recover[0].split(":", 1)[1].strip()
    assert resume == f"kedro run --pipelines train --env ci --params {PARAMS},training.resume=true"
    args = shlex.split(resume)
    finished = subprocess.run([KEDRO, *args[1:]], cwd=project, capture_output=True, text=True,
                              timeout=600, check=False)  # fmt: skip
    assert finished.returncode == 0, finished.stdout + finished.stderr
    runs = {run.info.run_id: run for run in client.search_runs([experiment])}
    (resumed,) = [run for run in runs.values() if run.info.run_id != killed.info.run_id]
    assert resumed.info.status == "FINISHED"
    assert resumed.data.tags[RESUMED_FROM_TAG] == killed.info.run_id
    assert unfinished_run(last) is None  # trained to the end
