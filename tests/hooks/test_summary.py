"""RunSummaryHook: every run ends with one summary block of what it produced."""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace

import pytest

from yolo_mlops.hooks.summary import RunSummaryHook
from yolo_mlops.tracking import run as tracking_run

CHECKPOINT = SimpleNamespace(_filepath="data/06_models/best.pt")


@pytest.fixture
def hook(monkeypatch, tmp_path) -> RunSummaryHook:
    monkeypatch.setattr(tracking_run, "current", lambda: None)  # an untracked run
    hook = RunSummaryHook()
    run_params = {"project_path": str(tmp_path), "pipeline_names": ["training"], "env": "ci"}
    hook.before_pipeline_run(run_params, pipeline=None, catalog={"model_checkpoint": CHECKPOINT})
    return hook


def test_finished_run_lists_its_checkpoints_and_metrics(hook, caplog):
    hook.after_dataset_saved("model_checkpoint", {}, node=None)
    hook.after_dataset_saved("metrics", {"mAP50-95": 0.25}, node=None)
    with caplog.at_level(logging.INFO, logger="yolo_mlops.hooks.summary"):
        hook.after_pipeline_run({})
        hook.after_pipeline_run({})  # logged once
    assert caplog.text.count("run summary: training (env ci) FINISHED") == 1
    assert "data/06_models/best.pt" in caplog.text
    assert "mAP50-95 0.2500" in caplog.text


def test_failed_run_says_why(hook, caplog):
    with caplog.at_level(logging.INFO, logger="yolo_mlops.hooks.summary"):
        hook.on_pipeline_error(RuntimeError("boom"), {})
    assert "FAILED" in caplog.text and "RuntimeError: boom" in caplog.text


def test_a_run_that_lost_its_server_before_the_block_started_is_named_not_untracked(
    monkeypatch, tmp_path, caplog
):
    lost = tracking_run.TrackedRun("http://127.0.0.1:9", "3c1f" * 8, owned=True, broken=True)
    monkeypatch.setattr(tracking_run._state, "active", lost)
    hook = RunSummaryHook()
    hook.before_pipeline_run({"project_path": str(tmp_path), "env": "ci"}, None, catalog={})
    with caplog.at_level(logging.INFO, logger="yolo_mlops.hooks.summary"):
        hook.on_pipeline_error(RuntimeError("tracking lost"), {})
    assert re.search(rf"MLflow run +: \({lost.run_id}\)", caplog.text)
    assert "not tracked" not in caplog.text


def _unfinished_last(save_dir, epochs: int = 3) -> None:
    from yolo_mlops.yolo.io.checkpoint import make_config, save_checkpoint

    config = make_config(scale="n", nc=1, names=["a"], imgsz=64, train_args={"epochs": epochs})
    save_dir.mkdir(parents=True)
    save_checkpoint(save_dir / "last.pt", state_dict={}, config=config, training={"epoch": 0})


def _interrupted_hook(tmp_path, params: dict) -> RunSummaryHook:
    hook = RunSummaryHook()
    hook.after_context_created(SimpleNamespace(params=params))
    runtime = {"training": {"epochs": 3, "save_dir": params["training"]["save_dir"]}}
    run_params = {"project_path": str(tmp_path), "pipeline_names": ["train"], "env": "ci",
                  "runtime_params": runtime}  # fmt: skip
    hook.before_pipeline_run(run_params, pipeline=None, catalog={})
    return hook


def test_interrupted_run_is_killed_and_resumes_its_own_save_dir_with_its_params(
    monkeypatch, tmp_path, caplog
):
    from yolo_mlops.yolo.train.interrupt import TrainingInterrupted

    monkeypatch.setattr(tracking_run, "current", lambda: None)
    _unfinished_last(tmp_path / "models/mine")
    hook = _interrupted_hook(tmp_path, {"training": {"save_dir": "models/mine"}})
    error = TrainingInterrupted(2, tmp_path / "models/mine/last.pt", 1, 3)
    with caplog.at_level(logging.INFO, logger="yolo_mlops.hooks.summary"):
        hook.on_pipeline_error(error, {})
    assert "train (env ci) KILLED" in caplog.text
    assert "TrainingInterrupted: training stopped by SIGINT at epoch 2, after step 3" in caplog.text
    assert (
        "recover with : kedro run --pipelines train --env ci --params "
        "training.epochs=3,training.save_dir=models/mine,training.resume=true"
    ) in caplog.text


def test_a_failure_without_a_resumable_checkpoint_never_suggests_resume(
    monkeypatch, tmp_path, caplog
):
    monkeypatch.setattr(tracking_run, "current", lambda: None)
    hook = _interrupted_hook(tmp_path, {"training": {"save_dir": "models/mine"}})
    disk_full = OSError(28, "cannot write checkpoint last.pt in models/mine: ENOSPC")
    with caplog.at_level(logging.INFO, logger="yolo_mlops.hooks.summary"):
        hook.on_pipeline_error(disk_full, {})
    assert "FAILED" in caplog.text and "[Errno 28]" in caplog.text
    assert "training.resume" not in caplog.text and "recover with" not in caplog.text
