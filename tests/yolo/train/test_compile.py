"""``training.compile``: the setting, the eager fallback, and compiled training equal to eager."""

from __future__ import annotations

import logging

import pytest
import torch

from tests.yolo.tiny_cache import make_tiny_cache
from yolo_mlops.yolo.model.network import build_model
from yolo_mlops.yolo.train import compile as compile_module
from yolo_mlops.yolo.train.compile import CompiledForward, compile_backend, maybe_compile
from yolo_mlops.yolo.train.config import TrainConfig
from yolo_mlops.yolo.train.trainer import Trainer

LOSSES = ("train/box_loss", "train/cls_loss", "train/dfl_loss")


@pytest.mark.parametrize(
    ("setting", "backend"),
    [(False, None), (True, "inductor"), ("aot_eager", "aot_eager"), ("off", None), (None, None)],
)
def test_compile_setting_names_the_backend(setting, backend):
    assert compile_backend(setting) == backend


@pytest.mark.parametrize("setting", ["", "  ", 3])
def test_bad_compile_setting_is_an_error_naming_the_parameter(setting):
    with pytest.raises(ValueError, match=r"training\.compile"):
        TrainConfig(compile=setting)


def test_eager_setting_leaves_the_model_alone():
    model = build_model("n", num_classes=2)
    assert maybe_compile(model, model, False) is model


def test_compiler_failure_falls_back_to_eager_with_one_warning(monkeypatch, caplog):
    calls = []

    def broken_compile(model, backend):
        def run(_images):
            calls.append(backend)
            raise RuntimeError("inductor: no working C++ compiler")

        return run

    monkeypatch.setattr(compile_module.torch, "compile", broken_compile)
    torch.manual_seed(0)
    model = build_model("n", num_classes=2).eval()
    wrapped = maybe_compile(model, model, True)
    assert isinstance(wrapped, CompiledForward) and wrapped.compiled
    images = torch.rand(1, 3, 64, 64)
    with caplog.at_level(logging.WARNING), torch.no_grad():
        first = wrapped(images)
        second = wrapped(images)
    expected = model(images)
    assert calls == ["inductor"]  # tried once, never again
    assert not wrapped.compiled
    for got in (first, second):
        for a, b in zip(got, expected, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    warnings = [r for r in caplog.records if "training continues in eager mode" in r.message]
    assert len(warnings) == 1 and "no working C++ compiler" in warnings[0].message
    # the bare model is what EMA and checkpoints read
    assert wrapped.module is model
    assert {id(p) for p in wrapped.parameters()} == {id(p) for p in model.parameters()}


@pytest.mark.integration
def test_compiled_training_gives_the_eager_losses(tmp_path):
    cache = make_tiny_cache(tmp_path / "tiny", n_images=8, imgsz=64)
    histories = {}
    for setting in (False, "eager"):  # dynamo graph capture, eager kernels: same arithmetic
        config = TrainConfig(epochs=2, batch=4, optimizer="SGD", progress=False, workers=0,
                             device="cpu", close_mosaic=1, val=False, compile=setting,
                             save_dir=str(tmp_path / f"run-{setting}"))  # fmt: skip
        histories[setting] = Trainer(config, cache).fit().history
    for eager_row, compiled_row in zip(histories[False], histories["eager"], strict=True):
        for key in LOSSES:
            assert compiled_row[key] == pytest.approx(eager_row[key], rel=1e-5), key
