"""The node's per-epoch callbacks: MLflow curves through the tracking layer and the ETA line."""

from __future__ import annotations

import logging

from yolo_mlops.pipelines.train import callbacks


def test_tracking_callback_uses_log_epoch_without_the_epoch_column(monkeypatch):
    from yolo_mlops import tracking

    calls = []
    monkeypatch.setattr(tracking, "log_epoch", lambda metrics, step: calls.append((metrics, step)))
    callback = callbacks.tracking_callback()
    callback(3, {"epoch": 3, "fitness": 0.5})
    assert calls == [({"fitness": 0.5}, 3)]


def test_eta_is_the_mean_epoch_time_times_the_epochs_left(caplog):
    on_epoch_end = callbacks.eta_callback(epochs=10)
    with caplog.at_level(logging.INFO, logger=callbacks.__name__):
        on_epoch_end(1, {"time/epoch": 50.0})
        on_epoch_end(2, {"time/epoch": 70.0})
    assert "epoch 1/10 done: 50.0 s/epoch, ETA 7m30s" in caplog.text
    assert "epoch 2/10 done: 60.0 s/epoch, ETA 8m00s" in caplog.text


def test_extra_callbacks_run_first_then_eta_then_tracking(monkeypatch):
    tracker = object()
    monkeypatch.setattr(callbacks, "tracking_callback", lambda: tracker)
    extra = [lambda epoch, row: None]
    hooks = callbacks.epoch_callbacks(3, extra)
    assert hooks[0] is extra[0] and hooks[-1] is tracker and len(hooks) == 3
