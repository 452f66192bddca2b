import logging

import pytest
import torch

from yolo_mlops.tracking import precision_tag
from yolo_mlops.yolo.train import precision

TRAINS = {"train_model"}


@pytest.mark.parametrize(
    ("training", "native", "expected"),
    [
        ({"bf16": False, "device": "cpu"}, True, "float32"),
        ({"bf16": "auto", "device": "cpu", "pretrained": "yolo11n.pt"}, False, "float32"),
        ({"bf16": "auto", "device": "cpu", "pretrained": "yolo11n.pt"}, True, "bfloat16 autocast"),
        (
            {"bf16": "auto", "device": "cpu", "pretrained": "", "bf16_after_steps": 60},
            True,
            "bfloat16 autocast after 60 float32 optimizer steps",
        ),
        (
            {"bf16": "auto", "device": "cpu", "pretrained": None, "bf16_after_steps": 0},
            True,
            "bfloat16 autocast",
        ),
        (
            {"bf16": True, "device": "cpu", "pretrained": "yolo11n.pt"},
            False,
            "bfloat16 autocast (emulated: no native bf16)",
        ),
    ],
)
def test_precision_tag_says_what_the_trainer_resolves_on_this_cpu(
    monkeypatch, training, native, expected
):
    monkeypatch.setattr(precision, "native_bf16", lambda: native)
    tags = precision_tag.precision_tags({"training": training}, TRAINS)
    assert tags == {"training.precision": expected}


def test_precision_tag_only_for_runs_that_train_and_unknown_for_an_unusable_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert precision_tag.precision_tags({"training": {"bf16": False}}, {"evaluate_model"}) == {}
    tags = precision_tag.precision_tags({"training": {"device": "cuda:0"}}, TRAINS)
    assert tags == {"training.precision": "unknown"}


def test_precision_tag_does_not_repeat_the_trainers_emulation_warning(monkeypatch, caplog):
    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    with caplog.at_level(logging.WARNING):
        precision_tag.precision_tags({"training": {"bf16": True, "device": "cpu"}}, TRAINS)
    assert not caplog.records
