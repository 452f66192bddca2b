"""Run state helpers (yolo_mlops.yolo.train.state): seeding, deterministic mode, the epoch line."""

from __future__ import annotations

import pytest
import torch

from yolo_mlops.yolo.model.network import build_model
from yolo_mlops.yolo.train.loss import DetectionLoss
from yolo_mlops.yolo.train.state import format_row, seed_everything

TARGETS = torch.tensor([[0, 1, 4.0, 6.0, 40.0, 30.0], [1, 0, 10.0, 10.0, 60.0, 50.0]])


@pytest.fixture
def torch_determinism():
    """Restore torch's process-wide determinism settings after the test."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.utils.deterministic.fill_uninitialized_memory,
    )
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.utils.deterministic.fill_uninitialized_memory = saved[2]


def _gradients_after_one_step(fill: bool) -> dict[str, torch.Tensor]:
    """Loss gradients of a seeded yolo11n on a fixed batch, deterministic mode, fill on/off."""
    torch.manual_seed(0)
    model = build_model("n", num_classes=3).train().to(memory_format=torch.channels_last)
    images = torch.rand((2, 3, 64, 64), generator=torch.Generator().manual_seed(1))
    torch.utils.deterministic.fill_uninitialized_memory = fill
    maps = model(images.contiguous(memory_format=torch.channels_last))
    loss, _ = DetectionLoss(3)(maps, TARGETS, batch_size=2)
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_same_seed_gives_the_same_global_draws(torch_determinism):
    seed_everything(7, deterministic=False)
    first = torch.rand(3)
    seed_everything(7, deterministic=False)
    assert torch.equal(first, torch.rand(3))


def test_deterministic_mode_without_filling_new_tensors(torch_determinism):
    seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.utils.deterministic.fill_uninitialized_memory is False


def test_skipping_the_fill_changes_no_gradient_bit(torch_determinism):
    torch.use_deterministic_algorithms(True, warn_only=True)
    filled = _gradients_after_one_step(fill=True)
    unfilled = _gradients_after_one_step(fill=False)
    assert filled.keys() == unfilled.keys() and len(filled) > 100
    for name, grad in filled.items():
        assert torch.isfinite(grad).all(), name
        assert torch.equal(grad, unfilled[name]), name


ROW = {
    "epoch": 2, "train/box_loss": 1.25, "train/cls_loss": 2.5, "train/dfl_loss": 0.75,
    "metrics/precision": 0.5, "metrics/recall": 0.25, "metrics/mAP50": 0.125,
    "metrics/mAP50-95": 0.0625, "fitness": 0.07, "time/epoch": 3.0, "time/data": 0.5,
}  # fmt: skip


def test_epoch_line_shows_precision_recall_and_map_of_a_validated_epoch():
    line = format_row(ROW, epochs=5)
    assert line == (
        "epoch 2/5: loss box 1.2500 cls 2.5000 dfl 0.7500 | P 0.500 R 0.250 mAP50 0.1250 "
        "mAP50-95 0.0625 | 3.0s (data 0.5s)"
    )


def test_epoch_line_without_validation_shows_no_metrics():
    zeros = ROW | dict.fromkeys(("metrics/precision", "metrics/recall", "metrics/mAP50"), 0.0)
    line = format_row(zeros, epochs=5, validated=False)
    assert line == "epoch 2/5: loss box 1.2500 cls 2.5000 dfl 0.7500 | 3.0s (data 0.5s)"
