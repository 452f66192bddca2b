"""SIGINT/SIGTERM stop training at a step boundary with a resumable last.pt (tiny CPU runs)."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from tests.yolo.tiny_cache import make_tiny_cache
from tests.yolo.train.test_trainer import TIMING
from tests.yolo.train.test_trainer import config as trainer_config
from yolo_mlops.yolo.train.interrupt import StopRequest, TrainingInterrupted
from yolo_mlops.yolo.train.run_guard import unfinished_run
from yolo_mlops.yolo.train.trainer import Trainer


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return make_tiny_cache(tmp_path_factory.mktemp("tiny"), n_images=8, imgsz=64)


def config(save_dir, **overrides) -> dict:
    """The trainer tests' tiny recipe, 2 epochs."""
    return trainer_config(save_dir, **({"epochs": 2} | overrides))


@pytest.fixture(scope="module")
def reference(cache, tmp_path_factory):
    return Trainer(config(tmp_path_factory.mktemp("reference")), cache).fit()


def comparable(history):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


def send_at(signum: int, epoch: int, step: int, times: int = 1):
    """A batch callback that sends ``signum`` to this process after batch ``step`` of ``epoch``."""

    def callback(current_epoch: int, current_step: int) -> None:
        if (current_epoch, current_step) == (epoch, step):
            for _ in range(times):
                os.kill(os.getpid(), signum)

    return callback


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_epoch_writes_last_pt_and_the_resume_matches_the_uninterrupted_run(
    cache, reference, tmp_path, signum
):
    run_dir = tmp_path / "run"
    callback = send_at(signum, epoch=0, step=0)
    with pytest.raises(TrainingInterrupted) as caught:
        Trainer(config(run_dir), cache, batch_callbacks=[callback]).fit()
    assert caught.value.checkpoint == run_dir / "last.pt"
    assert caught.value.exit_code == 128 + signum
    assert signal.Signals(signum).name in str(caught.value)
    assert signal.getsignal(signum) is not None  # the handlers are restored
    partial = torch.load(run_dir / "last.pt", weights_only=True)["training"]
    assert partial["epoch"] == -1 and partial["partial_epoch"]["steps"] == 1
    assert unfinished_run(run_dir / "last.pt") == (0, 2)

    resumed = Trainer(config(run_dir, resume=True), cache).fit()
    assert comparable(resumed.history) == comparable(reference.history)
    final = torch.load(resumed.last, weights_only=True)["state_dict"]
    expected = torch.load(reference.last, weights_only=True)["state_dict"]
    for key, value in expected.items():
        torch.testing.assert_close(final[key], value, rtol=0, atol=0)


def test_a_signal_during_the_last_step_of_an_epoch_stops_after_its_checkpoint(cache, tmp_path):
    callback = send_at(signal.SIGTERM, epoch=0, step=1)  # 8 images / batch 4: the last step
    with pytest.raises(TrainingInterrupted, match="epoch 2, after step 0"):
        Trainer(config(tmp_path), cache, batch_callbacks=[callback]).fit()
    training = torch.load(tmp_path / "last.pt", weights_only=True)["training"]
    assert training["epoch"] == 0 and training["partial_epoch"] is None


def test_a_second_signal_stops_at_once(cache, tmp_path):
    callback = send_at(signal.SIGINT, epoch=0, step=0, times=2)
    with pytest.raises(KeyboardInterrupt, match="second SIGINT"):
        Trainer(config(tmp_path), cache, batch_callbacks=[callback]).fit()
    assert not (tmp_path / "last.pt").exists()


def test_stop_request_restores_the_previous_handlers():
    before = signal.getsignal(signal.SIGTERM)
    request = StopRequest()
    with request.installed():
        assert signal.getsignal(signal.SIGTERM) == request._handle
        os.kill(os.getpid(), signal.SIGTERM)
        assert request() and request.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before
