"""`kedro run` ends a user-fixable error in a few lines that name the fix; the traceback goes to
errors.log. Unexpected errors keep their traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cli_project import KEDRO, make_project
from yolo_mlops import cli

pytestmark = pytest.mark.integration

MAX_LINES = 15


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("cli") / "project")


def kedro_run(project: Path, params: str) -> subprocess.CompletedProcess:
    command = [KEDRO, "run", "--env", "ci", "--pipelines", "train", "--params", params]
    return subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=600,
                          check=False)  # fmt: skip


@pytest.mark.parametrize(
    ("params", "fix"),
    [
        ("training.epochs=abc", "training.epochs: expected an integer, got 'abc'"),
        # offline: the weights server is a closed loopback port
        (
            "training.pretrained=yolo11n.pt,training.weights_base_url=http://127.0.0.1:9/",
            'training.pretrained=""',
        ),
    ],
    ids=["wrong-parameter", "offline-weights"],
)
def test_a_user_fixable_error_is_short_names_the_fix_and_logs_the_traceback(project, params, fix):
    done = kedro_run(project, params)
    console = (done.stdout + done.stderr).splitlines()
    assert done.returncode == 1
    assert len(console) <= MAX_LINES, "\n".join(console)
    assert "Traceback" not in done.stdout + done.stderr
    assert any(fix in line for line in console), "\n".join(console)
    assert any("run summary: train (env ci) FAILED" in line for line in console)
    assert console[-1] == f"The full traceback is in {project / cli.ERROR_LOG}"
    assert "data_ingestion.source" not in "\n".join(console)  # the download's hint, not ours
    assert "Traceback" in (project / cli.ERROR_LOG).read_text()


def test_only_known_error_types_count_as_user_fixable():
    from yolo_mlops.pipelines.params import ParameterError
    from yolo_mlops.yolo.io.checkpoint import CheckpointWriteError
    from yolo_mlops.yolo.train.interrupt import TrainingInterrupted

    assert cli.user_fixable(ParameterError("training.x: bad"))
    assert cli.user_fixable(CheckpointWriteError(Path("/x/last.pt"), OSError(28, "full")))
    assert cli.user_fixable(TrainingInterrupted(2, None, 0, 1))
    assert cli.user_fixable(KeyboardInterrupt())
    assert not cli.user_fixable(RuntimeError("a bug"))
    assert not cli.user_fixable(ZeroDivisionError())


def test_a_stop_on_request_exits_with_128_plus_the_signal():
    from yolo_mlops.yolo.train.interrupt import TrainingInterrupted

    assert cli._exit_code(TrainingInterrupted(15, None, 0, 1)) == 143
    assert cli._exit_code(KeyboardInterrupt()) == 130
    assert cli._exit_code(KeyboardInterrupt("second SIGTERM: training stopped at once")) == 143
    assert cli._exit_code(ValueError("x")) == 1


def test_a_stop_outside_training_ends_with_a_killed_block_and_exit_130(
    tmp_path, monkeypatch, caplog
):
    import logging

    monkeypatch.chdir(tmp_path)

    def interrupted(**options):
        raise KeyboardInterrupt

    options = {"pipelines": ["train"], "env": "ci", "params": {"training": {"epochs": 3}}}
    from yolo_mlops.hooks import HOOKS
    from yolo_mlops.hooks.summary import RunSummaryHook

    # a fresh process: no earlier session's block logged by the shared hook instances (a real
    # run resets this when its context is created; this stop comes before any context)
    for hook in HOOKS:
        if isinstance(hook, RunSummaryHook):
            monkeypatch.setattr(hook, "logged", False)
    with caplog.at_level(logging.INFO), pytest.raises(SystemExit) as caught:
        cli.guarded(interrupted)(**options)
    assert caught.value.code == 130
    assert "run summary: train (env ci) KILLED" in caplog.text
    assert "recover with : kedro run --pipelines train --env ci --params training.epochs=3" in (
        caplog.text
    )
    assert "KeyboardInterrupt" in (tmp_path / cli.ERROR_LOG).read_text()


def test_an_unexpected_error_keeps_its_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def broken(**options):
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        cli.guarded(broken)(pipelines=[], env=None, params={})
    assert not (tmp_path / cli.ERROR_LOG).exists()
