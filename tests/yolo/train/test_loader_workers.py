"""Loader processes on CPU only take the cores the training step leaves free."""

from __future__ import annotations

import logging

import pytest
import torch

from tests.yolo.tiny_cache import make_tiny_cache
from yolo_mlops.yolo.train import trainer as trainer_module
from yolo_mlops.yolo.train.loader_workers import available_cores, loader_workers
from yolo_mlops.yolo.train.trainer import TrainConfig, Trainer


@pytest.mark.parametrize(
    ("requested", "cores", "threads", "processes", "expected"),
    [
        (2, 2, 2, 1, 0),  # this project's 2-core CI machine: the step uses both cores
        (2, 4, 2, 1, 2),  # two cores free: both workers run
        (8, 16, 4, 2, 8),  # two DDP processes x 4 threads leave 8 cores
        (8, 16, 4, 3, 4),
        (4, 16, 16, 1, 0),  # torch's default: a thread per core, nothing left
        (0, 64, 1, 1, 0),  # never more than asked
    ],
)
def test_cpu_workers_get_only_the_cores_the_step_leaves(
    requested, cores, threads, processes, expected
):
    got = loader_workers(
        requested, device_type="cpu", threads=threads, processes=processes, cores=cores
    )
    assert got == expected


def test_accelerator_runs_keep_the_configured_workers_up_to_their_share_of_cores():
    assert loader_workers(8, device_type="cuda", threads=16, cores=16) == 8
    assert loader_workers(3, device_type="mps", threads=8, cores=8) == 3
    assert loader_workers(8, device_type="cuda", threads=16, processes=4, cores=16) == 4
    assert loader_workers(8, device_type="cuda", threads=1, processes=4, cores=2) == 1
    assert loader_workers(0, device_type="cuda", threads=1, cores=64) == 0


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="workers >= 0"):
        loader_workers(-1, device_type="cpu", threads=1)
    with pytest.raises(ValueError, match="threads >= 1"):
        loader_workers(2, device_type="cpu", threads=0)


def test_trainer_on_cpu_builds_its_loaders_without_oversubscribing(tmp_path, monkeypatch, caplog):
    cache = make_tiny_cache(tmp_path / "tiny", n_images=4, imgsz=64)
    seen: list[int] = []
    real = trainer_module.build_train_loader

    def spy(*args, **kwargs):
        seen.append(kwargs["workers"])
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "build_train_loader", spy)
    config = TrainConfig(
        epochs=1, batch=4, optimizer="SGD", progress=False, device="cpu", val=False,
        workers=2, save_dir=str(tmp_path / "run"),
    )  # fmt: skip
    # as with torch's default on a machine whose cores all run the step's threads
    monkeypatch.setattr(torch, "get_num_threads", available_cores)
    with caplog.at_level(logging.INFO, logger="yolo_mlops.yolo.train.loader_workers"):
        Trainer(config, cache).fit()
    assert seen == [0]
    assert "training on cpu: 0 loader worker(s) instead of 2" in caplog.text
