"""Data-parallel training helpers for ``torchrun`` (DDP; gloo on CPU, nccl on CUDA).

Every process sees the same global batches in the same order (the train loader is a
deterministic function of seed, epoch and index) and keeps only its contiguous shard of each,
so the union of the shards is exactly the single-process global batch. ``DistributedDataParallel``
averages gradients over processes; the engine multiplies each process's summed loss by the world
size, so the averaged gradient equals the gradient of the loss summed over the global batch, i.e.
what one process computes for the whole batch — provided the loss is additive over images and
BatchNorm uses the same statistics (see :func:`wrap_model`).

Two things are not additive in the real recipe, exactly as in the reference implementation:
``DetectionLoss`` divides by the target-score sum of the batch it sees (here: the shard), and
BatchNorm in training mode normalises with per-shard statistics (``SyncBatchNorm`` fixes that on
CUDA only). So DDP training matches single-process training in expectation, not bit for bit;
``tests/yolo/train/test_distributed.py`` proves the machinery exact with a per-image loss and frozen
BatchNorm statistics.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from yolo_mlops.yolo.data.loader import _worker_init, collate_train

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Who this process is.

    Attributes:
        rank: global rank (0 = main process: logs, evaluates, writes checkpoints).
        local_rank: rank on this machine (selects ``cuda:<local_rank>``).
        world_size: number of processes (1 = not distributed).
        local_world_size: processes on this machine (they share its cores).
        backend: "gloo", "nccl" or "" when not distributed.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    backend: str = ""

    @property
    def is_main(self) -> bool:
        """True on rank 0."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True when ``torchrun`` set ``WORLD_SIZE`` > 1 in the environment."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: torch.device, timeout_s: float = 3600.0) -> DistInfo:
    """Join the process group described by torchrun's env vars (RANK, WORLD_SIZE, LOCAL_RANK).

    Uses nccl on CUDA and gloo otherwise. Returns a non-distributed ``DistInfo`` when not launched
    by torchrun. ``timeout_s`` bounds collective waits, e.g. ranks idling while rank 0 validates.
    """
    if not launched_by_torchrun():
        return DistInfo()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    info = DistInfo(
        rank=dist.get_rank(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        world_size=dist.get_world_size(),
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", dist.get_world_size())),
        backend=backend,
    )
    LOGGER.info("DDP process %d/%d (%s)", info.rank, info.world_size, backend)
    return info


def cleanup(info: DistInfo) -> None:
    """Leave the process group (no-op when not distributed)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op when not distributed)."""
    if info.enabled:
        dist.barrier()


def broadcast_object(value: Any, info: DistInfo, src: int = 0) -> Any:
    """``value`` from rank ``src`` on every process (pickled; small objects only)."""
    if not info.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_mean(values: list[float], info: DistInfo) -> list[float]:
    """Average a few floats over processes (e.g. epoch losses for the log); no-op alone."""
    if not info.enabled:
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return (tensor / info.world_size).tolist()


def shard_slice(batch_size: int, rank: int, world_size: int) -> slice:
    """Contiguous slice of a global batch of ``batch_size`` images owned by ``rank``.

    Shards differ in size by at most one image; their union, in rank order, is the batch.
    """
    base, extra = divmod(batch_size, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def shard_batch(
    batch: dict[str, torch.Tensor], rank: int, world_size: int
) -> dict[str, torch.Tensor]:
    """This rank's part of a global batch; ``targets[:, 0]`` is re-indexed into the shard.

    Every tensor whose first dimension is the batch size is sliced; ``targets`` rows
    ``(batch_index, class, x1, y1, x2, y2)`` are filtered by batch index.
    """
    images = batch["images"]
    size = images.shape[0]
    part = shard_slice(size, rank, world_size)
    out: dict[str, torch.Tensor] = {}
    for key, value in batch.items():
        if key == "targets":
            index = value[:, 0]
            keep = (index >= part.start) & (index < part.stop)
            shard = value[keep].clone()
            shard[:, 0] -= part.start
            out[key] = shard
        elif isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == size:
            out[key] = value[part]
        else:
            out[key] = value
    return out


class ShardedLoader:
    """Wrap a global-batch loader so that each rank yields only its shard of every batch.

    ``len`` and ``set_epoch`` pass through, so the engine sees a normal loader. Every rank builds
    the full global batch and keeps its slice: simple and exactly deterministic; the loader
    work is repeated on every rank.
    """

    def __init__(self, loader: Any, info: DistInfo) -> None:
        self.loader = loader
        self.info = info

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        """Forward to the wrapped loader."""
        self.loader.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for batch in self.loader:
            yield shard_batch(batch, self.info.rank, self.info.world_size)


def wrap_model(model: nn.Module, device: torch.device, info: DistInfo, sync_bn: bool) -> nn.Module:
    """``DistributedDataParallel(model)`` when distributed, else ``model`` unchanged.

    BatchNorm: plain BN normalises each process's shard with its own statistics, which is not
    what one process does with the whole batch. ``sync_bn`` converts BN to ``SyncBatchNorm``
    (global statistics; PyTorch supports it on CUDA only). On CPU the per-shard statistics stay,
    which is also what the reference implementation does by default.
    """
    if not info.enabled:
        return model
    if sync_bn and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


class ShardedBatchSampler:
    """A batch sampler that yields this rank's slice of every batch of ``sampler``."""

    def __init__(self, sampler: Any, info: DistInfo) -> None:
        self.sampler = sampler
        self.info = info

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[list]:
        for batch in self.sampler:
            yield batch[shard_slice(len(batch), self.info.rank, self.info.world_size)]


class ShardedTrainLoader:
    """A ``TrainLoader`` whose ranks each load only their shard of every global batch.

    Works on the loader's ``(epoch, index)`` batch sampler, so every rank agrees on the global
    batch (a function of seed and epoch) and decodes/augments only its own images.
    """

    def __init__(self, loader: Any, info: DistInfo) -> None:
        self.loader = loader
        self.info = info
        self._loader = DataLoader(
            loader.dataset,
            batch_sampler=ShardedBatchSampler(loader.sampler, info),
            num_workers=loader.workers,
            collate_fn=collate_train,
            worker_init_fn=_worker_init if loader.workers > 0 else None,
            persistent_workers=loader.workers > 0,
            pin_memory=getattr(loader, "pin_memory", False),
        )

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        """Forward to the wrapped loader (its sampler is shared)."""
        self.loader.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return iter(self._loader)


def shard_loader(loader: Any, info: DistInfo) -> Any:
    """Per-rank view of a global-batch training loader (no-op when not distributed).

    Uses :class:`ShardedTrainLoader` when the loader exposes ``dataset``/``sampler``/``workers``
    (our ``TrainLoader``), else :class:`ShardedLoader`, which slices full batches.
    """
    if not info.enabled:
        return loader
    if all(hasattr(loader, name) for name in ("dataset", "sampler", "workers")):
        return ShardedTrainLoader(loader, info)
    return ShardedLoader(loader, info)
