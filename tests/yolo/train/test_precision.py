"""The training forward's reduced precision: ``training.amp``, ``bf16``, ``bf16_after_steps``."""

from __future__ import annotations

import logging
import platform
from pathlib import Path

import pytest
import torch

from yolo_mlops.pipelines.params import ParameterError, parse_params
from yolo_mlops.yolo.train.config import TrainConfig
from yolo_mlops.yolo.train.precision import (
    autocast_dtype,
    describe,
    first_bf16_epoch,
    float32_steps,
    native_bf16,
)

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


@pytest.fixture()
def cpu_bf16(monkeypatch):
    """Pretend the CPU has (True) or lacks (False) native bf16."""

    def pretend(native: bool) -> None:
        monkeypatch.setattr("yolo_mlops.yolo.train.precision.native_bf16", lambda: native)

    return pretend


def test_auto_turns_bf16_on_exactly_where_the_cpu_has_it(cpu_bf16):
    cpu_bf16(True)
    assert autocast_dtype(CPU, amp=True, bf16="auto") is torch.bfloat16
    cpu_bf16(False)
    assert autocast_dtype(CPU, amp=True, bf16="auto") is None


def test_false_is_float32_on_any_cpu(cpu_bf16):
    cpu_bf16(True)
    assert autocast_dtype(CPU, amp=True, bf16=False) is None


def test_forcing_bf16_without_native_support_warns_that_it_is_emulated(cpu_bf16, caplog):
    cpu_bf16(False)
    with caplog.at_level(logging.WARNING, logger="yolo_mlops.yolo.train.precision"):
        assert autocast_dtype(CPU, amp=False, bf16=True) is torch.bfloat16
    assert "emulates it" in caplog.text and "bf16: auto or false" in caplog.text
    caplog.clear()
    cpu_bf16(True)
    with caplog.at_level(logging.WARNING, logger="yolo_mlops.yolo.train.precision"):
        assert autocast_dtype(CPU, amp=False, bf16=True) is torch.bfloat16
    assert caplog.text == ""


def test_cuda_follows_amp_and_ignores_bf16(cpu_bf16):
    cpu_bf16(True)
    assert autocast_dtype(CUDA, amp=True, bf16=False) is torch.float16
    assert autocast_dtype(CUDA, amp=False, bf16="auto") is None
    assert autocast_dtype(torch.device("mps"), amp=True, bf16=True) is None


@pytest.mark.skipif(
    platform.machine() != "x86_64" or not Path("/proc/cpuinfo").is_file(),
    reason="compares with the CPU flags of Linux's /proc/cpuinfo on x86_64",
)
def test_native_bf16_is_the_cpus_avx512_bf16_or_amx_flag():
    flags = set(Path("/proc/cpuinfo").read_text().split())
    assert native_bf16() == bool(flags & {"avx512_bf16", "amx_bf16"})


def test_bf16_setting_accepts_true_false_auto_and_names_the_key_otherwise():
    assert parse_params(TrainConfig, {"bf16": "auto"}, "training").bf16 == "auto"
    assert parse_params(TrainConfig, {"bf16": False}, "training").bf16 is False
    with pytest.raises(ParameterError, match=r"training\.bf16"):
        parse_params(TrainConfig, {"bf16": "sometimes"}, "training")
    with pytest.raises(ValueError, match=r"training\.bf16"):
        TrainConfig(bf16="yes")
    with pytest.raises(ValueError, match=r"training\.bf16_after_steps"):
        TrainConfig(bf16_after_steps=-1)


def test_a_bf16_run_from_scratch_starts_in_fp32_for_whole_epochs():
    bf16 = torch.bfloat16
    # coco16b / COCO128 recipes: 2 optimizer steps per epoch -> 30 float32 epochs
    assert first_bf16_epoch(bf16, fp32_steps=60, steps_per_epoch=2, from_scratch=True) == 30
    # an optimizer step every 4 batches of a 2-batch epoch: 0.5 steps per epoch
    assert first_bf16_epoch(bf16, fp32_steps=3, steps_per_epoch=0.5, from_scratch=True) == 6
    # a large dataset is past the fp32 steps within its first epoch
    assert first_bf16_epoch(bf16, fp32_steps=60, steps_per_epoch=1850, from_scratch=True) == 1


def test_trained_weights_fp32_runs_and_fp16_start_at_epoch_zero():
    steps = dict(fp32_steps=60, steps_per_epoch=2)
    assert first_bf16_epoch(torch.bfloat16, from_scratch=False, **steps) == 0
    assert first_bf16_epoch(None, from_scratch=True, **steps) == 0
    assert first_bf16_epoch(torch.float16, from_scratch=True, **steps) == 0
    assert first_bf16_epoch(torch.bfloat16, fp32_steps=0, steps_per_epoch=2, from_scratch=True) == 0


def test_only_a_bf16_run_from_scratch_has_float32_steps():
    assert float32_steps(torch.bfloat16, fp32_steps=60, from_scratch=True) == 60
    assert float32_steps(torch.bfloat16, fp32_steps=60, from_scratch=False) == 0
    assert float32_steps(torch.float16, fp32_steps=60, from_scratch=True) == 0
    assert float32_steps(None, fp32_steps=60, from_scratch=True) == 0
    assert float32_steps(torch.bfloat16, fp32_steps=0, from_scratch=True) == 0


def test_describe_says_what_the_epochs_train_in(monkeypatch):
    monkeypatch.setattr("yolo_mlops.yolo.train.precision.native_bf16", lambda: True)
    assert describe(None, 0, epochs=2) == "float32"
    assert describe(torch.float16, 0, epochs=2) == "float16 autocast"
    assert describe(torch.bfloat16, 30, epochs=100) == (
        "bfloat16 autocast from epoch 31 (float32 before)"
    )
    assert describe(torch.bfloat16, 30, epochs=30) == (
        "float32 (bfloat16 autocast would start at epoch 31)"
    )  # the run ends before the switch


def test_describe_says_when_bf16_is_emulated(monkeypatch):
    monkeypatch.setattr("yolo_mlops.yolo.train.precision.native_bf16", lambda: False)
    assert describe(torch.bfloat16, 0, epochs=1) == "bfloat16 autocast (emulated: no native bf16)"
    assert describe(torch.bfloat16, 3, epochs=2).startswith("float32 (")
