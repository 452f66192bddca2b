"""YOLO11 detection loss (yolo_mlops.yolo.train.loss)."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F

from tests.yolo.train.loss_reference import dense_detection_loss
from yolo_mlops.yolo.train.loss import DetectionLoss
from yolo_mlops.yolo.train.loss_terms import dfl_loss, pad_targets, softplus_sum

REG_MAX = 16


def random_maps(
    batch: int, num_classes: int, imgsz: int = 64, seed: int = 0, requires_grad: bool = True
) -> list[torch.Tensor]:
    """Three head maps ``[B, 64 + nc, imgsz/s, imgsz/s]`` for strides 8, 16, 32."""
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(
            (batch, 4 * REG_MAX + num_classes, imgsz // s, imgsz // s), generator=generator
        ).requires_grad_(requires_grad)
        for s in (8, 16, 32)
    ]


TARGETS = torch.tensor(
    [
        [0, 1, 4.0, 6.0, 40.0, 30.0],
        [1, 0, 10.0, 10.0, 60.0, 50.0],
        [0, 2, 20.0, 20.0, 62.0, 62.0],
    ]
)


def test_pad_targets_groups_rows_by_image() -> None:
    labels, bboxes, mask_gt = pad_targets(TARGETS, batch_size=3)
    assert labels.shape == (3, 2)
    assert bboxes.shape == (3, 2, 4)
    assert mask_gt.tolist() == [[True, True], [True, False], [False, False]]
    assert labels[0].tolist() == [1, 2]  # image 0 keeps its rows in their original order
    assert labels[1, 0] == 0
    assert torch.equal(bboxes[0, 1], TARGETS[2, 2:])
    assert torch.equal(bboxes[1, 0], TARGETS[1, 2:])
    assert (bboxes[2] == 0).all()


def test_pad_targets_of_no_rows_gives_zero_gts() -> None:
    labels, bboxes, mask_gt = pad_targets(torch.zeros((0, 6)), batch_size=2)
    assert labels.shape == (2, 0)
    assert bboxes.shape == (2, 0, 4)
    assert mask_gt.shape == (2, 0)


def test_pad_targets_rejects_batch_index_outside_the_batch() -> None:
    with pytest.raises(ValueError, match="batch_index"):
        pad_targets(TARGETS, batch_size=1)


def test_loss_rejects_class_ids_outside_the_model_classes() -> None:
    maps = random_maps(2, 3)
    bad = torch.tensor([[0, 3, 4.0, 6.0, 40.0, 30.0]])
    with pytest.raises(ValueError, match="class_id"):
        DetectionLoss(num_classes=3)(maps, bad, batch_size=2)


def test_dfl_is_near_zero_when_logits_put_all_mass_on_exact_target_bins() -> None:
    target = torch.tensor([[0.0, 3.0, 7.0, 14.0]])
    logits = torch.full((1, 4, REG_MAX), -50.0)
    logits[0, torch.arange(4), target[0].long()] = 50.0
    assert dfl_loss(logits, target, REG_MAX).item() < 1e-6


def test_dfl_is_smallest_when_mass_is_split_like_the_target() -> None:
    target = torch.tensor([[2.25, 2.25, 2.25, 2.25]])
    split = torch.full((1, 4, REG_MAX), -1e4)
    split[..., 2] = math.log(0.75)
    split[..., 3] = math.log(0.25)
    one_bin = torch.full((1, 4, REG_MAX), -1e4)
    one_bin[..., 2] = 0.0
    assert dfl_loss(split, target, REG_MAX) < dfl_loss(one_bin, target, REG_MAX)


def test_softplus_sum_matches_float64_softplus_over_extreme_logits() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.cat(
        (
            torch.randn(1001, generator=generator) * 10,
            torch.tensor([-100.0, -30.0, -15.0, 0.0, 14.9, 15.0, 15.1, 30.0, 100.0]),
            torch.full((50,), -25.0),  # tiny terms that a float32 (1 + eˣ) would round away
        )
    )
    expected = F.softplus(logits.double()).sum()
    assert torch.isclose(softplus_sum(logits), expected, rtol=1e-7, atol=1e-5)
    tiny = torch.full((64,), -25.0)
    assert torch.isclose(softplus_sum(tiny), F.softplus(tiny.double()).sum(), rtol=1e-6)


def test_fast_loss_matches_dense_reference_in_value_and_gradient() -> None:
    targets = torch.cat((TARGETS, torch.tensor([[1, 2, 30.0, 2.0, 50.0, 26.0]])))
    ours_maps = random_maps(2, 3, imgsz=96, seed=3)
    ref_maps = [m.detach().clone().requires_grad_() for m in ours_maps]
    total, parts = DetectionLoss(num_classes=3)(ours_maps, targets, batch_size=2)
    ref_parts = dense_detection_loss(ref_maps, targets, 3)
    assert torch.allclose(parts, ref_parts.detach(), rtol=1e-5, atol=1e-6)
    total.backward()
    (ref_parts.sum() * 2).backward()
    for ours, ref in zip(ours_maps, ref_maps, strict=True):
        assert torch.allclose(ours.grad, ref.grad, rtol=1e-4, atol=1e-6)


def test_loss_is_finite_and_differentiable() -> None:
    maps = random_maps(2, 3)
    total, parts = DetectionLoss(num_classes=3)(maps, TARGETS[:2], batch_size=2)
    assert total.ndim == 0
    assert total.requires_grad
    assert parts.shape == (3,)
    assert not parts.requires_grad
    assert torch.isfinite(total)
    assert torch.isfinite(parts).all()
    assert (parts > 0).all()
    assert torch.isclose(total.detach(), parts.sum() * 2)
    total.backward()
    for feature in maps:
        assert feature.grad is not None
        assert torch.isfinite(feature.grad).all()
    # Box channels of positive anchors and class channels both receive gradient.
    assert maps[0].grad[:, : 4 * REG_MAX].abs().sum() > 0
    assert maps[0].grad[:, 4 * REG_MAX :].abs().sum() > 0


def test_no_targets_give_zero_box_and_dfl_and_finite_class_loss() -> None:
    maps = random_maps(2, 3)
    total, parts = DetectionLoss(num_classes=3)(maps, torch.zeros((0, 6)), batch_size=2)
    assert torch.isfinite(total)
    assert parts[0] == 0
    assert parts[2] == 0
    assert parts[1] > 0
    total.backward()
    assert (maps[0].grad[:, : 4 * REG_MAX] == 0).all()


def test_total_scales_with_batch_size_and_gains() -> None:
    maps = random_maps(2, 3, requires_grad=False)
    _, parts = DetectionLoss(num_classes=3)(maps, TARGETS[:2], batch_size=2)
    total4, _ = DetectionLoss(num_classes=3)(maps, TARGETS[:2], batch_size=4)
    assert torch.isclose(total4, parts.sum() * 4)
    _, doubled = DetectionLoss(num_classes=3, box=15.0, cls=1.0, dfl=3.0)(
        maps, TARGETS[:2], batch_size=2
    )
    assert torch.allclose(doubled, parts * 2)


def test_loss_under_no_grad_gives_the_same_parts_without_a_graph() -> None:
    maps = random_maps(2, 3)
    criterion = DetectionLoss(num_classes=3)
    total, parts = criterion(maps, TARGETS[:2], batch_size=2)
    with torch.no_grad():
        total_eval, parts_eval = criterion(maps, TARGETS[:2], batch_size=2)
    assert not total_eval.requires_grad
    assert torch.equal(parts, parts_eval)
    assert torch.equal(total.detach(), total_eval)


def test_channels_last_maps_give_the_same_loss_and_gradients() -> None:
    maps = random_maps(2, 3)
    nhwc = [m.detach().to(memory_format=torch.channels_last).requires_grad_() for m in maps]
    criterion = DetectionLoss(num_classes=3)
    total, parts = criterion(maps, TARGETS[:2], batch_size=2)
    total_nhwc, parts_nhwc = criterion(nhwc, TARGETS[:2], batch_size=2)
    assert torch.allclose(parts, parts_nhwc)
    total.backward()
    total_nhwc.backward()
    for plain, last in zip(maps, nhwc, strict=True):
        assert torch.allclose(plain.grad, last.grad, atol=1e-7)


def test_loss_rejects_maps_with_wrong_channel_count() -> None:
    maps = random_maps(1, 3)
    with pytest.raises(ValueError, match="channels"):
        DetectionLoss(num_classes=5)(maps, TARGETS[:1], batch_size=1)


def test_loss_is_float32_under_bfloat16_autocast() -> None:
    maps = [m.detach().bfloat16().requires_grad_() for m in random_maps(2, 3)]
    criterion = DetectionLoss(num_classes=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, parts = criterion(maps, TARGETS[:2], batch_size=2)
    assert total.dtype == torch.float32
    assert parts.dtype == torch.float32
    assert torch.isfinite(total)
    total.backward()
    assert maps[0].grad is not None
    assert maps[0].grad.dtype == torch.bfloat16


def test_good_predictions_score_lower_than_random_ones() -> None:
    """Maps that predict the target box and class at its anchors get a much lower loss."""
    num_classes = 2
    box = [8.0, 8.0, 40.0, 40.0]
    targets = torch.tensor([[0, 1, *box]])
    criterion = DetectionLoss(num_classes=num_classes)
    good = [torch.zeros((1, 4 * REG_MAX + num_classes, 64 // s, 64 // s)) for s in (8, 16, 32)]
    for level, stride in enumerate((8, 16, 32)):
        size = 64 // stride
        centres = (torch.arange(size) + 0.5) * stride
        for row in range(size):
            for col in range(size):
                x, y = centres[col].item(), centres[row].item()
                inside = box[0] < x < box[2] and box[1] < y < box[3]
                distances = [x - box[0], y - box[1], box[2] - x, box[3] - y]
                for side, distance in enumerate(distances):
                    grid = min(max(distance / stride, 0.0), REG_MAX - 1.01)
                    low = int(grid)
                    channels = good[level][0, side * REG_MAX : (side + 1) * REG_MAX, row, col]
                    channels.fill_(-20.0)
                    channels[low] = math.log(max(low + 1 - grid, 1e-6))
                    channels[low + 1] = math.log(max(grid - low, 1e-6))
                good[level][0, 4 * REG_MAX :, row, col] = -8.0
                if inside:
                    good[level][0, 4 * REG_MAX + 1, row, col] = 8.0
    _, good_parts = criterion(good, targets, batch_size=1)
    _, random_parts = criterion(random_maps(1, num_classes, requires_grad=False), targets, 1)
    assert good_parts[0] < 0.01  # near-perfect boxes
    # DFL of a split two-bin target cannot reach 0 (its floor is the split's entropy).
    assert good_parts[2] < 0.7 * random_parts[2]
    assert good_parts[1] < random_parts[1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_loss_runs_on_cuda_and_matches_cpu() -> None:
    maps = random_maps(2, 3, requires_grad=False)
    cpu_total, cpu_parts = DetectionLoss(num_classes=3)(maps, TARGETS[:2], batch_size=2)
    cuda_maps = [m.cuda() for m in maps]
    total, parts = DetectionLoss(num_classes=3)(cuda_maps, TARGETS[:2].cuda(), batch_size=2)
    assert total.device.type == "cuda"
    assert torch.allclose(parts.cpu(), cpu_parts, rtol=1e-4, atol=1e-5)
    assert torch.isclose(total.cpu(), cpu_total, rtol=1e-4)
    half_maps = [m.half().requires_grad_() for m in cuda_maps]
    with torch.autocast("cuda", dtype=torch.float16):
        total, parts = DetectionLoss(num_classes=3)(half_maps, TARGETS[:2].cuda(), batch_size=2)
    assert total.dtype == torch.float32
    assert torch.allclose(parts.cpu(), cpu_parts, rtol=1e-2, atol=1e-2)
    total.backward()
    assert torch.isfinite(half_maps[0].grad).all()


def _model_available() -> bool:
    try:
        return importlib.util.find_spec("yolo_mlops.yolo.model.network") is not None
    except ImportError:
        return False


@pytest.mark.skipif(not _model_available(), reason="yolo_mlops.yolo.model.network not written yet")
def test_yolo11n_overfits_two_synthetic_images() -> None:
    """A fresh yolo11n trained on two 64×64 images for a few dozen steps halves its loss."""
    from yolo_mlops.yolo.model.network import build_model

    torch.manual_seed(0)
    model = build_model("n", num_classes=2).train()
    images = torch.zeros((2, 3, 64, 64))
    images[0, :, 8:40, 10:44] = torch.tensor([0.9, 0.2, 0.2])[:, None, None]
    images[0, :, 44:60, 36:60] = torch.tensor([0.2, 0.3, 0.9])[:, None, None]
    images[1, :, 20:56, 4:30] = torch.tensor([0.2, 0.3, 0.9])[:, None, None]
    images[1, :, 4:20, 34:62] = torch.tensor([0.9, 0.2, 0.2])[:, None, None]
    targets = torch.tensor(
        [
            [0, 0, 10.0, 8.0, 44.0, 40.0],
            [0, 1, 36.0, 44.0, 60.0, 60.0],
            [1, 1, 4.0, 20.0, 30.0, 56.0],
            [1, 0, 34.0, 4.0, 62.0, 20.0],
        ]
    )
    criterion = DetectionLoss(num_classes=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    losses = []
    for _ in range(40):
        total, _ = criterion(model(images), targets, batch_size=2)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(total.item())
    assert all(math.isfinite(value) for value in losses)
    assert min(losses[-5:]) < 0.5 * losses[0], losses
