"""The ``tune`` pipeline compiled for Kubeflow: a study task, parallel trial tasks against one
study, a report task; and what each task runs."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from click.testing import CliRunner

from tests.conftest import PROJECT_ROOT
from yolo_mlops.kubeflow import compiler, task
from yolo_mlops.kubeflow import tune as kfp_tune
from yolo_mlops.kubeflow.cli import commands


def _args(compiled, name: str) -> list[str]:
    return compiled.executor(name)["container"]["args"]


def test_compile_tune_runs_parallel_trial_tasks_between_the_study_and_the_report(
    tmp_path, monkeypatch, parse_compiled, kfp_kubernetes
):
    ci = yaml.safe_load((PROJECT_ROOT / "conf/ci/parameters_tune.yml").read_text())
    loaded = []

    def load_project(path, pipeline, env):  # the project's resolved parameters, without Kedro
        loaded.append((pipeline, env))
        return None, None, ci

    monkeypatch.setattr(compiler, "load_project", load_project)
    output = tmp_path / "tune.yaml"
    result = CliRunner().invoke(
        commands,
        ["kubeflow", "compile-tune", "--env", "ci", "--image", "img:1", "--workers", "3",
         "--gpu", "1", "--tune-storage", "postgresql://optuna@db/optuna",
         "--output", str(output)],
        obj=type("Metadata", (), {"project_path": PROJECT_ROOT})(),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert loaded == [("tune", "ci")]
    compiled = parse_compiled(output)
    loop = next(name for name in compiled.tasks if name.startswith("for-loop"))
    assert compiled.edges() == {"tune-study": [], loop: ["tune-study"],
                                "tune-report": sorted([loop, "tune-study"])}  # fmt: skip
    assert compiled.tasks[loop].iterator_policy.parallelism_limit == 3
    assert compiled.raw["root"]["dag"]["tasks"][loop]["parameterIterator"]["items"]["raw"] == (
        "[0, 1, 2]"
    )
    parameters = compiled.raw["root"]["inputDefinitions"]["parameters"]
    assert parameters["tune_storage"]["defaultValue"] == "postgresql://optuna@db/optuna"
    assert parameters["study_name"]["defaultValue"] == "ci-tune"  # conf/ci/parameters_tune.yml
    study, trials, report = (_args(compiled, f"tune-{n}") for n in ("study", "trials", "report"))
    assert "--create-run" in study and "--run-id" not in study
    assert "tune.workers=1" in trials and "--run-id" in trials and "--finish-run" not in trials
    assert "--finish-run" in report
    assert trials[trials.index("--step") + 1] == "trials"
    resources = compiled.executor("tune-trials")["container"]["resources"]
    assert resources["accelerator"]["resourceCount"] == "1"
    assert compiled.kubernetes("tune-trials")["pvcMount"][0]["mountPath"] == "/app/data"


@pytest.fixture
def shared_run(monkeypatch):
    calls: dict[str, object] = {}
    monkeypatch.setattr(task, "start_shared_run", lambda stage, name: "run-1")
    monkeypatch.setattr(task, "release_shared_run", lambda: calls.setdefault("released", True))
    monkeypatch.setattr(
        task, "end_shared_run", lambda run_id, ok, stage: calls.setdefault("ended", (run_id, ok))
    )
    return calls


def test_trial_task_runs_the_tune_pipeline_nodes_in_the_shared_run(tmp_path, monkeypatch,
                                                                   shared_run):  # fmt: skip
    seen = {}

    def fake_run(command, cwd, env, check):
        seen.update(command=command, run_id=env.get("MLFLOW_RUN_ID"))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    params = {"tune.workers": "1", "tune.n_trials": "16.0", "tune.storage": ""}
    stage = task.Stage("tune-trials-0", ["run_trials"], tmp_path, "ci", params)
    assert kfp_tune.run_step(stage, task.SharedRun(run_id="run-9")) == "run-9"
    command = seen["command"]
    assert command[command.index("--pipeline") + 1] == "tune"
    assert command[command.index("--nodes") + 1] == "run_trials"
    assert command[command.index("--params") + 1] == "tune.workers=1,tune.n_trials=16"
    assert seen["run_id"] == "run-9" and "ended" not in shared_run
    assert (tmp_path / "data" / "05_model_input").is_dir()


def test_failed_task_marks_the_shared_run_failed(tmp_path, monkeypatch, shared_run):
    monkeypatch.setattr(subprocess, "run", lambda command, **kw: subprocess.CompletedProcess(
        command, 3))  # fmt: skip
    stage = task.Stage("tune-study-0", ["create_study"], tmp_path)
    with pytest.raises(task.StageFailedError, match="exited with 3"):
        kfp_tune.run_step(stage, task.SharedRun(create=True, name="job"))
    assert shared_run == {"released": True, "ended": ("run-1", False)}
