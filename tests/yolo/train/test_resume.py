"""A resumed run keeps its checkpoint's recipe; only run-length and hardware settings change."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from yolo_mlops.yolo.train.resume import ResumeParameterError, check_given, resumed_config
from yolo_mlops.yolo.train.trainer import TrainConfig

RECORDED = dataclasses.asdict(TrainConfig(epochs=3, lr0=0.02, batch=8, pretrained="yolo11n.pt"))


def test_the_checkpoints_recipe_wins_over_the_configured_one(caplog):
    configured = TrainConfig(epochs=3, lr0=0.01, batch=16, resume=True)
    with caplog.at_level(logging.INFO):
        config = resumed_config(configured, RECORDED)
    assert (config.lr0, config.batch, config.resume) == (0.02, 8, True)
    assert "training.lr0=0.02 as in the checkpoint (configured: 0.01)" in caplog.text


def test_settings_that_may_change_take_the_new_value_and_say_so(caplog):
    configured = TrainConfig(epochs=5, lr0=0.02, batch=8, device="cpu", resume=True)
    with caplog.at_level(logging.INFO):
        config = resumed_config(configured, RECORDED)
    assert config.epochs == 5
    assert "training.epochs changes from 3 to 5" in caplog.text
    check_given(configured, RECORDED, {"epochs", "device", "resume"})  # no error


def test_a_differing_recipe_value_given_again_is_an_error_naming_it():
    configured = TrainConfig(epochs=3, lr0=0.05, batch=8, resume=True)
    with pytest.raises(ResumeParameterError, match=r"training\.lr0=0\.05 differs .*\(0\.02"):
        check_given(configured, RECORDED, {"lr0", "resume"})
    check_given(configured, RECORDED, {"resume"})  # from conf, not the command line: no error


def test_the_initial_weights_given_on_resume_are_not_an_error_and_the_checkpoints_stay():
    configured = TrainConfig(epochs=3, lr0=0.02, batch=8, pretrained="other.pt", resume=True)
    check_given(configured, RECORDED, {"pretrained"})
    assert resumed_config(configured, RECORDED).pretrained == "yolo11n.pt"
