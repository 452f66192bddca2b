"""RunSummaryHook: every run ends with one summary block of what it produced."""

from __future__ import annotations

import logging
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
