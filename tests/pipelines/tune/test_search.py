"""A small study end to end (real training, MLflow child runs, pruning, a tracking outage), and a
study killed with SIGKILL mid-trial then resumed by two worker processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from kedro.config import OmegaConfigLoader
from matplotlib.figure import Figure
from mlflow import MlflowClient

from tests.yolo.tiny_cache import make_tiny_cache
from yolo_mlops.hooks.parameters import validate_parameters
from yolo_mlops.pipelines.params import parse_params
from yolo_mlops.pipelines.tune import nodes, search
from yolo_mlops.pipelines.tune import study as tune_study
from yolo_mlops.tracking import run as tracking_run
from yolo_mlops.tracking import tune_runs
from yolo_mlops.tracking.config import TrackingParams
from yolo_mlops.yolo.train.trainer import TrainConfig

PROJECT_ROOT = Path(__file__).resolve().parents[3]
TRAINING = {"epochs": 1, "batch": 4, "optimizer": "SGD", "device": "cpu", "workers": 0,
            "progress": False, "val_batch": 4, "close_mosaic": 0}  # fmt: skip
SPACE = {"training": {"lr0": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True}},
         "augment": {"mosaic": {"type": "float", "low": 0.0, "high": 1.0}}}  # fmt: skip


def tune_block(tmp_path: Path, **overrides) -> dict:
    return {"study_name": "test", "n_trials": 3, "epochs": 2, "space": SPACE,
            "storage": f"sqlite:///{tmp_path}/optuna.db", "work_dir": str(tmp_path / "trials"),
            "heartbeat_s": 1, "grace_s": 3} | overrides  # fmt: skip


class PruneFrom(optuna.pruners.BasePruner):
    """Prunes every trial numbered ``first`` or later at its first report."""

    def __init__(self, first: int) -> None:
        self.first = first

    def prune(self, study, frozen) -> bool:
        return frozen.number >= self.first


@pytest.fixture
def outage_on_trial_1(monkeypatch):
    """Trial 1's MLflow run becomes unreachable at its first epoch."""
    runs: dict[str, str] = {}
    start, log = tune_runs.start_trial_run, tune_runs.log_trial_epoch

    def recording_start(uri, parent, name, tags, params):
        runs[name] = start(uri, parent, name, tags, params)
        return runs[name]

    def flaky_log(uri, run_id, row, step):
        if run_id == runs.get("test-trial-001"):
            raise tune_runs.TrialTrackingError("tracking server unreachable: connection refused")
        log(uri, run_id, row, step)

    monkeypatch.setattr(tune_runs, "start_trial_run", recording_start)
    monkeypatch.setattr(tune_runs, "log_trial_epoch", flaky_log)


def _children(uri: str, parent_id: str) -> dict[str, object]:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_run(parent_id).info.experiment_id
    found = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent_id}'")
    return {run.data.tags["optuna.trial"]: run for run in found}


def _merged_params(tmp_path: Path, best_params: dict) -> dict:
    """The project's conf/base with the best-params file dropped into conf/local."""
    conf = tmp_path / "conf"
    shutil.copytree(PROJECT_ROOT / "conf" / "base", conf / "base")
    (conf / "local").mkdir()
    (conf / "local" / "parameters_tuned.yml").write_text(yaml.safe_dump(best_params))
    loader = OmegaConfigLoader(str(conf), base_env="base", default_run_env="local")
    return dict(loader["parameters"])


def test_study_runs_trials_as_child_runs_prunes_survives_an_outage_and_registers_the_best(
    tmp_path, monkeypatch, outage_on_trial_1
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tune_study, "build_pruner", lambda settings: PruneFrom(3))
    cache = make_tiny_cache(tmp_path / "tiny", n_images=4, imgsz=64)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    parent = tracking_run.start_or_join(TrackingParams(uri=uri), tmp_path, "tune", {})
    tune = tune_block(tmp_path)
    try:
        study = nodes.create_study(tune, TRAINING, {})
        trials = nodes.run_trials(cache, study, tune, TRAINING, {})
        table, best_params, summary, *plots = nodes.summarize_study(
            study, trials, tune, TRAINING, {"imgsz": 64, "augment": {"fliplr": 0.5}}
        )
        registration = nodes.register_best_trial(summary, tune, {})
    finally:
        tracking_run.end()

    # trial 0 is the configured recipe, 1 lost its tracking server, 3 was pruned
    assert list(table["state"]) == ["COMPLETE", "FAIL", "COMPLETE", "PRUNED"]
    assert "unreachable" in table["fail_reason"][1]
    assert trials["counts"]["COMPLETE"] + trials["counts"]["PRUNED"] == 3
    assert table["training.lr0"][0] == pytest.approx(TrainConfig().lr0)
    children = _children(uri, parent.run_id)
    assert sorted(children) == ["0", "1", "2", "3"]
    assert {k: r.data.tags["optuna.state"] for k, r in children.items()} == {
        "0": "COMPLETE", "1": "FAIL", "2": "COMPLETE", "3": "PRUNED"}  # fmt: skip
    history = MlflowClient(tracking_uri=uri).get_metric_history(children["0"].info.run_id,
                                                                 "metrics/mAP50-95")  # fmt: skip
    assert [m.step for m in history] == [1, 2]
    assert children["1"].info.status == "FAILED" and children["3"].info.status == "FINISHED"

    assert summary["best"]["number"] in (0, 2) and summary["parent_run_id"] == parent.run_id
    merged = _merged_params(tmp_path, best_params)
    validate_parameters(merged)
    lr0 = summary["best"]["params"]["training.lr0"]
    assert parse_params(TrainConfig, merged["training"], "training").lr0 == pytest.approx(lr0)
    assert merged["preprocessing"]["augment"]["fliplr"] == 0.5  # unsearched keys kept
    for figure in plots:
        assert isinstance(figure, Figure)
        figure.savefig(tmp_path / "plot.png")
    assert registration["status"] == "registered" and "challenger" in registration["aliases"]
    assert registration["run_id"] == summary["best"]["mlflow_run_id"]


def _wait_for_running_trial(storage: str, name: str, number: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        trials = optuna.load_study(study_name=name, storage=storage).trials
        if len(trials) > number and trials[number].intermediate_values:
            return
        time.sleep(0.1)
    raise AssertionError(f"trial {number} never reported an epoch")


def test_killed_search_resumes_keeps_finished_trials_fails_the_killed_one_and_uses_two_workers(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(PROJECT_ROOT)  # the workers import the test helper module from here
    monkeypatch.setenv("TUNE_TEST_EPOCH_S", "0.3")
    monkeypatch.setattr(search, "WORKER_MODULE", "tests.pipelines.tune.sleepy_worker")
    tune = tune_block(tmp_path, n_trials=4, epochs=4, baseline=False, workers=2,
                      space={"training": SPACE["training"]}, pruner={"kind": "none"})  # fmt: skip
    spec = search.SearchSpec(tune["storage"], tune, TRAINING, {}, cache_dir=str(tmp_path))
    search.start_study(spec)
    path = spec.write(tmp_path / "spec.json")
    command = [sys.executable, "-m", search.WORKER_MODULE, "--spec", str(path)]
    first = subprocess.Popen(command, env=os.environ | {"PYTHONPATH": str(PROJECT_ROOT)})
    try:
        _wait_for_running_trial(tune["storage"], "test", number=1)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    before = optuna.load_study(study_name="test", storage=tune["storage"]).trials
    assert before[0].state.name == "COMPLETE" and before[1].state.name == "RUNNING"

    with pytest.raises(tune_study.StudyExistsError, match=r"'test'.*tune\.resume=true"):
        search.start_study(spec)
    resumed = search.SearchSpec(**{**spec.__dict__, "tune": tune | {"resume": True}})
    search.start_study(resumed)
    counts = search.run_search(resumed, cache=type("Cache", (), {"root": tmp_path})())

    after = optuna.load_study(study_name="test", storage=tune["storage"]).trials
    assert counts["COMPLETE"] == 4 and counts["FAIL"] == 1 and counts["RUNNING"] == 0
    assert after[0].value == before[0].value and after[0].datetime_complete == before[
        0].datetime_complete  # fmt: skip
    assert after[1].state.name == "FAIL"
    assert len({t.user_attrs["worker"] for t in after[2:]}) == 2
