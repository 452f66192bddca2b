"""train_one_epoch: accumulation, warmup, clipping, EMA, non-finite loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from yolo_mlops.yolo.train.ema import ModelEMA
from yolo_mlops.yolo.train.engine import (
    EpochStats,
    LoopOptions,
    LoopState,
    NonFiniteLossError,
    RunObjects,
    StepSchedule,
    optimizer_step,
    prepare_images,
    train_one_epoch,
)
from yolo_mlops.yolo.train.optim import LRFactor, OptimizerChoice, build_optimizer, build_scheduler


class TinyDetector(nn.Module):
    """Returns three 'raw maps' like YOLO11 does."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        y = self.conv(x)
        return [y, y[:, :, ::2, ::2], y[:, :, ::4, ::4]]


def squared_loss(maps, targets, batch_size):
    """Additive over images: per-image mean of squares, summed; parts = (x, x, x) per image."""
    per_image = sum(m.pow(2).mean(dim=(1, 2, 3)) for m in maps)
    total = per_image.sum()
    return total, (total.detach() / batch_size).repeat(3)


def batches(n: int, size: int = 4):
    generator = torch.Generator().manual_seed(1)
    return [
        {
            "images": torch.randint(
                0, 256, (size, 3, 8, 8), dtype=torch.uint8, generator=generator
            ),
            "targets": torch.zeros((2, 6)),
        }
        for _ in range(n)
    ]


def setup(  # noqa: PLR0917
    batch_size: int = 4,
    nbs: int = 8,
    warmup: int = 0,
    clip: float = 10.0,
    accumulate: int = 1,
    ema: bool = False,
) -> tuple[RunObjects, StepSchedule]:
    model = TinyDetector()
    optimizer = build_optimizer(model, OptimizerChoice("SGD", 0.1, 0.0, 0.0), 0.0)
    scheduler = build_scheduler(optimizer, LRFactor(2, 1.0))
    schedule = StepSchedule(
        epochs=2, batches_per_epoch=4, batch_size=batch_size, nbs=nbs, warmup_iters=warmup,
        warmup_bias_lr=0.0, warmup_momentum=0.0, momentum=0.0, lr_factor=LRFactor(2, 1.0),
        clip_grad=clip,
    )  # fmt: skip
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    objects = RunObjects(
        model, ModelEMA(model) if ema else None, optimizer, scheduler, scaler,
        LoopState(accumulate=accumulate),
    )  # fmt: skip
    return objects, schedule


def run(objects, schedule, loader, criterion=squared_loss, **options):
    cpu, options = torch.device("cpu"), LoopOptions(progress=False, **options)
    return train_one_epoch(objects.model, criterion, loader, objects, cpu, 0, schedule, options)


def test_optimizer_steps_every_accumulate_batches():
    objects, schedule = setup(nbs=8, accumulate=2, ema=True)
    steps = []
    original = objects.optimizer.step
    objects.optimizer.step = lambda *a, **k: (steps.append(1), original(*a, **k))[1]
    stats = run(objects, schedule, batches(4))
    # iterations 0..3 with last_opt_step=-1: steps at 1 and 3
    assert len(steps) == 2 and objects.loop.last_opt_step == 3 and objects.ema.updates == 2
    assert isinstance(stats, EpochStats) and stats.images == 16 and stats.instances == 2


def test_accumulated_gradients_equal_one_big_batch():
    data = batches(2)
    small, schedule = setup(nbs=8, accumulate=2)
    run(small, schedule, data)
    big, schedule_b = setup(batch_size=8, nbs=8)
    schedule_b.batches_per_epoch = 1
    run(big, schedule_b, [{k: torch.cat([d[k] for d in data]) for k in data[0]}])
    torch.testing.assert_close(small.model.conv.weight, big.model.conv.weight, rtol=1e-5, atol=1e-6)


def test_warmup_sets_lr_and_accumulate_each_iteration():
    objects, schedule = setup(nbs=8, warmup=100, accumulate=2)
    stats = run(objects, schedule, batches(4))
    # at iteration 3 of 100: lr = 0.1 * 3/100 for weights, accumulate = round(1 + 3/100) = 1
    assert stats.lrs[1] == pytest.approx(0.003)
    assert objects.loop.accumulate == 1 and objects.loop.last_opt_step == 3


def test_gradient_norm_is_clipped_before_the_step():
    objects, _ = setup(clip=1.0)
    model, optimizer = objects.model, objects.optimizer
    for p in model.parameters():
        p.grad = torch.full_like(p, 100.0)
    seen = []
    original = optimizer.step

    def spy(*args, **kwargs):
        seen.append(
            torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model.parameters()]))
        )
        return original(*args, **kwargs)

    optimizer.step = spy
    optimizer_step(model, optimizer, objects.scaler, None, clip_grad=1.0)
    assert float(seen[0]) == pytest.approx(1.0, rel=1e-4)
    assert all(p.grad is None for p in model.parameters())


def test_non_finite_loss_raises_naming_epoch_and_step():
    objects, schedule = setup()
    calls = []

    def nan_on_third(maps, targets, batch_size):
        calls.append(1)
        total, parts = squared_loss(maps, targets, batch_size)
        if len(calls) == 3:
            return total * float("nan"), parts * float("nan")
        return total, parts

    with pytest.raises(NonFiniteLossError, match=r"epoch 1 \(0-based 0\), step 2") as info:
        run(objects, schedule, batches(4), criterion=nan_on_third)
    assert info.value.epoch == 0 and info.value.step == 2


def test_batch_callbacks_see_every_step():
    objects, schedule = setup()
    seen = []
    run(objects, schedule, batches(3), callbacks=[lambda epoch, step: seen.append((epoch, step))])
    assert seen == [(0, 0), (0, 1), (0, 2)]


def test_empty_loader_is_an_error():
    objects, schedule = setup()
    with pytest.raises(ValueError, match="no batches"):
        run(objects, schedule, [])


def test_autocast_starts_at_the_first_reduced_epoch():
    options = LoopOptions(autocast_dtype=torch.bfloat16, first_reduced_epoch=2)
    assert [options.autocast_for(epoch) for epoch in range(4)] == [
        None, None, torch.bfloat16, torch.bfloat16,
    ]  # fmt: skip
    assert LoopOptions().autocast_for(5) is None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("channels_last", [True, False])
def test_images_prepared_in_the_autocast_dtype_equal_the_cast_float32_batch(dtype, channels_last):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 37, 41), dtype=torch.uint8, generator=generator)
    images.view(-1)[:256] = torch.arange(256, dtype=torch.uint8)  # every byte value
    cpu = torch.device("cpu")
    direct = prepare_images(images, cpu, channels_last, dtype)
    via_float32 = prepare_images(images, cpu, channels_last)
    assert via_float32.dtype == torch.float32 and direct.dtype == dtype
    assert direct.shape == images.shape and torch.equal(via_float32, images.float() / 255.0)
    assert torch.equal(direct, via_float32.to(dtype))
    assert direct.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_a_bf16_forward_is_the_same_from_a_bf16_or_a_float32_batch():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8, generator=generator)
    cpu = torch.device("cpu")
    outputs = []
    for dtype in (torch.float32, torch.bfloat16):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outputs.append(conv(prepare_images(images, cpu, True, dtype)))
    assert outputs[0].dtype == torch.bfloat16
    assert torch.equal(outputs[0], outputs[1])
