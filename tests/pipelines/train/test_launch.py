"""Multi-process training from the node: planning, and failures that must fail the node fast."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.yolo.tiny_cache import make_tiny_cache
from yolo_mlops.pipelines.params import parse_params
from yolo_mlops.pipelines.train import launch
from yolo_mlops.pipelines.train.launch import (
    LaunchPlan,
    gpu_ids,
    plan_launch,
    worker_command,
)
from yolo_mlops.pipelines.train.nodes import train_model
from yolo_mlops.pipelines.train.torchrun import DistributedTrainingError
from yolo_mlops.yolo.train.trainer import TrainConfig

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def config(**values) -> TrainConfig:
    return parse_params(TrainConfig, {"batch": 8} | values, "training")


@pytest.mark.parametrize(
    ("device", "ids"),
    [("0,1,2,3", [0, 1, 2, 3]), ("cuda:0,1", [0, 1]), ("2", [2]), (" 1, 3 ", [1, 3]),
     ("cpu", None), ("auto", None), ("cuda", None), ("cuda:1", [1]), ("mps", None)],
)  # fmt: skip
def test_gpu_ids_reads_ultralytics_device_lists(device, ids):
    assert gpu_ids(device) == ids


@pytest.mark.parametrize("device", ["0,x", "cuda:0,0", "1,,2"])
def test_malformed_device_list_names_the_parameter(device):
    with pytest.raises(ValueError, match=r"training\.device"):
        gpu_ids(device)


def test_plan_one_process_per_listed_gpu_with_visible_devices():
    plan = plan_launch(config(device="cuda:2,3"))
    assert plan == LaunchPlan(processes=2, device="cuda", visible_devices="2,3")
    assert plan.distributed


def test_plan_cpu_processes_and_single_process_defaults():
    assert plan_launch(config(device="cpu", nproc=2)) == LaunchPlan(2, "cpu")
    single = plan_launch(config(device="1"))
    assert single == LaunchPlan(1, "cuda:1") and not single.distributed
    assert plan_launch(config(), nodes=2).distributed


@pytest.mark.parametrize(
    ("values", "match"),
    [({"device": "0,1", "nproc": 3}, "leave training.nproc at 1"),
     ({"device": "0", "nproc": 2}, "list the GPUs"),
     ({"device": "mps", "nproc": 2}, "training.device to cpu"),
     ({"device": "cpu", "nproc": 4, "batch": 2}, "raise training.batch")],
)  # fmt: skip
def test_contradictory_settings_fail_with_the_fix(values, match):
    with pytest.raises(ValueError, match=match):
        plan_launch(config(**values))


def test_worker_threads_split_the_cores_the_process_may_use(monkeypatch):
    """Under a cpuset smaller than the machine, each worker gets its share of the allowed cores."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3}, raising=False)
    plan = LaunchPlan(processes=2, device="cpu")
    assert launch._worker_env(plan, TrainConfig())["OMP_NUM_THREADS"] == "2"
    assert launch._worker_env(plan, TrainConfig(threads=3))["OMP_NUM_THREADS"] == "3"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's own setting wins
    assert launch._worker_env(plan, TrainConfig())["OMP_NUM_THREADS"] == "1"


def test_local_and_pod_commands_share_the_worker_part():
    local = worker_command("/c", "/p.yml", launch.local_rendezvous(2, 1234), python="python")
    pod = worker_command("/c", "/p.yml", python="python")
    assert local[:3] == pod[:3] == ["python", "-m", "torch.distributed.run"]
    worker = ["-m", launch.WORKER_MODULE, "--cache", "/c", "--params", "/p.yml",
              "--augment", "/p.yml"]  # fmt: skip
    assert local[-len(worker) :] == pod[-len(worker) :] == worker
    assert "--nproc-per-node=2" in local and "--master-addr=127.0.0.1" in local


@pytest.fixture
def faulty(monkeypatch):
    """Point the node's launcher at tests/pipelines/train/faulty_worker.py."""
    path = os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setattr(launch, "WORKER_MODULE", "tests.pipelines.train.faulty_worker")
    return monkeypatch


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return make_tiny_cache(tmp_path_factory.mktemp("tiny"), n_images=4, imgsz=64)


def node_params(tmp_path: Path) -> dict:
    return {"epochs": 1, "batch": 4, "device": "cpu", "nproc": 2, "workers": 0,
            "progress": False, "save_dir": str(tmp_path / "run")}  # fmt: skip


@pytest.mark.integration
def test_a_rank_that_raises_fails_the_node_with_its_message(faulty, cache, tmp_path):
    faulty.setenv("FAULT", "raise")
    with pytest.raises(DistributedTrainingError) as error:
        train_model(cache, node_params(tmp_path))
    assert "rank=1 ValueError: rank 1 cannot read its shard: disk quota exceeded" in str(error)


@pytest.mark.integration
def test_a_killed_worker_fails_the_node_instead_of_hanging(faulty, cache, tmp_path):
    faulty.setenv("FAULT", "kill")
    started = time.monotonic()
    with pytest.raises(DistributedTrainingError, match=r"rank 1 exited with code -9.*SIGKILL"):
        train_model(cache, node_params(tmp_path))
    assert time.monotonic() - started < 240  # torchrun's monitor, not the collective timeout
