"""Training on a CUDA device: float16 AMP, page-locked batches, compiled training.

Skipped where no CUDA device is present (CI has none); run them on a GPU machine with
``python -m pytest tests/yolo/train/test_cuda.py`` (``benchmarks/gpu_check.sh`` does).
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.yolo.tiny_cache import make_tiny_cache
from yolo_mlops.yolo.data.loader import build_train_loader
from yolo_mlops.yolo.io.checkpoint import load_checkpoint
from yolo_mlops.yolo.train import engine
from yolo_mlops.yolo.train.distributed import DistInfo, shard_loader
from yolo_mlops.yolo.train.state import LOSS_KEYS
from yolo_mlops.yolo.train.trainer import TrainConfig, Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return make_tiny_cache(tmp_path_factory.mktemp("tiny"), n_images=8, imgsz=64)


def config(save_dir, **overrides) -> TrainConfig:
    base = {"epochs": 2, "batch": 4, "optimizer": "SGD", "save_dir": str(save_dir),
            "progress": False, "workers": 0, "device": "cuda", "close_mosaic": 1}  # fmt: skip
    return TrainConfig(**base | overrides)


def losses(history) -> list[float]:
    return [row[key] for row in history for key in LOSS_KEYS]


def test_amp_training_feeds_page_locked_batches_and_saves_checkpoints_that_load_on_cpu(
    cache, tmp_path, monkeypatch
):
    pinned = []
    prepare = engine.prepare_images

    def spy(images, *args, **kwargs):
        pinned.append(images.is_pinned())
        return prepare(images, *args, **kwargs)

    monkeypatch.setattr(engine, "prepare_images", spy)
    result = Trainer(config(tmp_path, amp=True, workers=2), cache).fit()
    assert pinned and all(pinned)  # 2 epochs x 2 batches, all copied asynchronously
    assert all(math.isfinite(v) for row in result.history for v in row.values())
    model = load_checkpoint(result.best)
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    with torch.no_grad():
        assert all(torch.isfinite(t).all() for t in model(torch.rand(1, 3, 64, 64)))


def test_float32_training_on_cuda_follows_the_cpu_run(cache, tmp_path):
    """Same seed, same batches: the losses differ only by the kernels' (and TF32's) rounding."""
    settings = {"epochs": 1, "val": False, "amp": False}  # amp is on by default on CUDA
    on_cuda = Trainer(config(tmp_path / "cuda", **settings), cache).fit().history
    on_cpu = Trainer(config(tmp_path / "cpu", device="cpu", **settings), cache).fit().history
    assert losses(on_cuda) == pytest.approx(losses(on_cpu), rel=1e-2)


def test_compiled_amp_training_follows_eager(cache, tmp_path, caplog):
    settings = {"epochs": 1, "val": False, "amp": True}
    eager = Trainer(config(tmp_path / "eager", **settings), cache).fit().history
    with caplog.at_level("INFO", logger="yolo_mlops.yolo.train.compile"):
        compiled = Trainer(config(tmp_path / "compiled", compile=True, **settings), cache).fit()
    assert "compiled with torch.compile (backend inductor)" in caplog.text
    assert "failed" not in caplog.text  # no fallback to eager
    assert losses(compiled.history) == pytest.approx(losses(eager), rel=2e-2)


def test_each_rank_of_a_sharded_loader_gets_the_same_batches_page_locked(cache):
    loaders = [
        shard_loader(
            build_train_loader(cache, batch_size=4, seed=3, epochs=2, pin_memory=pinned),
            DistInfo(rank=1, world_size=2, backend="nccl"),
        )
        for pinned in (False, True)
    ]
    plain, pinned = ([batch["images"] for batch in loader] for loader in loaders)
    assert all(images.is_pinned() for images in pinned)
    assert all(torch.equal(a, b) for a, b in zip(plain, pinned, strict=True))
