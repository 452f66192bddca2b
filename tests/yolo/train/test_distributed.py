"""DDP helpers: sharding, and torchrun with 2 CPU processes equals one process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.yolo.tiny_cache import make_tiny_cache
from yolo_mlops.yolo.data.loader import build_train_loader
from yolo_mlops.yolo.train.distributed import (
    DistInfo,
    ShardedLoader,
    ShardedTrainLoader,
    shard_batch,
    shard_loader,
    shard_slice,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).parents[1] / "ddp_worker.py"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return make_tiny_cache(tmp_path_factory.mktemp("tiny"), n_images=12, imgsz=64)


@pytest.mark.parametrize(("size", "world"), [(4, 2), (5, 2), (3, 4), (16, 3)])
def test_shards_are_disjoint_contiguous_and_cover_the_batch(size, world):
    parts = [shard_slice(size, rank, world) for rank in range(world)]
    covered = [i for part in parts for i in range(part.start, part.stop)]
    assert covered == list(range(size))
    lengths = [part.stop - part.start for part in parts]
    assert max(lengths) - min(lengths) <= 1


def test_shard_batch_reindexes_targets_into_the_shard():
    batch = {
        "images": torch.arange(4).view(4, 1, 1, 1),
        "targets": torch.tensor([[0, 1, 0, 0, 1, 1], [2, 0, 0, 0, 2, 2], [3, 2, 0, 0, 3, 3.0]]),
        "indices": torch.tensor([10, 11, 12, 13]),
    }
    second = shard_batch(batch, rank=1, world_size=2)
    assert second["images"].flatten().tolist() == [2, 3]
    assert second["indices"].tolist() == [12, 13]
    assert second["targets"][:, 0].tolist() == [0, 1]
    assert second["targets"][:, 1].tolist() == [0, 2]


def test_sharded_train_loader_ranks_together_yield_the_global_batches(cache):
    full = build_train_loader(cache, batch_size=4, seed=3, epochs=2, close_mosaic=0)
    full.set_epoch(1)
    expected = list(full)
    ranks = []
    for rank in range(2):
        loader = shard_loader(
            build_train_loader(cache, batch_size=4, seed=3, epochs=2, close_mosaic=0),
            DistInfo(rank=rank, world_size=2, backend="gloo"),
        )
        assert isinstance(loader, ShardedTrainLoader) and len(loader) == len(full)
        loader.set_epoch(1)
        ranks.append(list(loader))
    for whole, first, second in zip(expected, *ranks, strict=True):
        assert torch.equal(whole["images"], torch.cat([first["images"], second["images"]]))
        assert torch.equal(whole["indices"], torch.cat([first["indices"], second["indices"]]))
        assert len(whole["targets"]) == len(first["targets"]) + len(second["targets"])


def test_generic_sharded_loader_slices_full_batches():
    batches = [{"images": torch.zeros(4, 3, 2, 2), "targets": torch.zeros((0, 6))}]
    loader = shard_loader(batches, DistInfo(rank=1, world_size=2, backend="gloo"))
    assert isinstance(loader, ShardedLoader)
    assert next(iter(loader))["images"].shape[0] == 2
    assert shard_loader(batches, DistInfo()) is batches


def _run_worker(cache, out: Path, processes: int) -> None:
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(PROJECT_ROOT),
                        "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1"}  # fmt: skip
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(name, None)
    command = [sys.executable, str(WORKER), str(cache.root), str(out)]
    if processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc_per_node={processes}", *command[1:]]  # fmt: skip
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.integration
def test_torchrun_two_cpu_processes_equal_single_process_training(cache, tmp_path):
    _run_worker(cache, tmp_path / "single.pt", processes=1)
    _run_worker(cache, tmp_path / "ddp.pt", processes=2)
    single = torch.load(tmp_path / "single.pt", weights_only=True)
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    initial = torch.load(tmp_path / "single.pt", weights_only=True)  # same keys
    assert single.keys() == ddp.keys() == initial.keys()
    for key, value in single.items():
        torch.testing.assert_close(ddp[key], value, rtol=1e-5, atol=1e-5, msg=key)
    from yolo_mlops.yolo.model.network import build_model

    torch.manual_seed(0)
    fresh = build_model("n", num_classes=3).state_dict()
    moved = max((single[f"inner.{k}"] - v).abs().max().item() for k, v in fresh.items()
                if v.is_floating_point())  # fmt: skip
    assert moved > 1e-4  # the weights did train


@pytest.mark.integration
def test_train_ddp_entry_point_trains_with_two_processes(tmp_path):
    cache = make_tiny_cache(tmp_path / "tiny", n_images=8, imgsz=64)
    env = os.environ | {"OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(name, None)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "yolo_mlops.pipelines.train.ddp_worker", "--cache", str(cache.root),
        "--set", "epochs=1", "--set", "batch=4", "--set", "device=cpu", "--set", "progress=false",
        "--set", f"save_dir={tmp_path / 'run'}",
    ]  # fmt: skip
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert last["training"]["epoch"] == 0 and len(last["training"]["history"]) == 1
