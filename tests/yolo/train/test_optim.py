"""Optimizer groups, the auto rule, LR factors and warmup (design §4)."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from yolo_mlops.yolo.train.optim import (
    LRFactor,
    OptimizerChoice,
    accumulate_steps,
    apply_warmup,
    build_optimizer,
    build_scheduler,
    resolve_optimizer,
    split_parameters,
    warmup_iterations,
)


def tiny_net() -> nn.Module:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    net[2].weight.requires_grad_(True)
    return net


def test_split_parameters_separates_biases_weights_and_norm_weights():
    net = tiny_net()
    biases, decayed, norms = split_parameters(net)
    assert {id(p) for p in biases} == {id(net[1].bias), id(net[2].bias)}
    assert {id(p) for p in decayed} == {id(net[0].weight), id(net[2].weight)}
    assert {id(p) for p in norms} == {id(net[1].weight)}


def test_split_parameters_leaves_out_frozen_parameters():
    net = tiny_net()
    net[0].weight.requires_grad_(False)
    _, decayed, _ = split_parameters(net)
    assert [id(p) for p in decayed] == [id(net[2].weight)]


def test_build_optimizer_orders_groups_and_decays_only_weights():
    net = tiny_net()
    sgd = build_optimizer(net, OptimizerChoice("SGD", 0.01, 0.937, 0.1), weight_decay=5e-4)
    assert [g["weight_decay"] for g in sgd.param_groups] == [0.0, 5e-4, 0.0]
    assert len(sgd.param_groups[0]["params"]) == 2  # biases first
    assert sgd.param_groups[0]["nesterov"] is True
    assert sgd.param_groups[0]["momentum"] == 0.937


def test_adamw_uses_momentum_as_beta1():
    adam = build_optimizer(tiny_net(), OptimizerChoice("AdamW", 0.001, 0.9, 0.0), 5e-4)
    assert isinstance(adam, torch.optim.AdamW)
    assert adam.param_groups[1]["betas"] == (0.9, 0.999)
    assert adam.param_groups[0]["weight_decay"] == 0.0


def test_auto_picks_adamw_with_class_count_lr_for_short_runs():
    # coco128, batch 16, 100 epochs -> ceil(128/64)*100 = 200 iterations -> AdamW
    choice = resolve_optimizer(
        "auto", lr0=0.01, momentum=0.937, warmup_bias_lr=0.1, num_classes=80,
        num_images=128, batch_size=16, epochs=100,
    )  # fmt: skip
    assert choice == OptimizerChoice("AdamW", 0.000119, 0.9, 0.0)


def test_auto_picks_sgd_beyond_ten_thousand_iterations():
    choice = resolve_optimizer(
        "auto", lr0=0.02, momentum=0.95, warmup_bias_lr=0.1, num_classes=80,
        num_images=118_287, batch_size=64, epochs=600,
    )  # fmt: skip
    assert choice == OptimizerChoice("SGD", 0.01, 0.9, 0.0)


def test_explicit_optimizer_keeps_user_values_and_unknown_name_fails():
    kwargs = dict(lr0=0.02, momentum=0.9, warmup_bias_lr=0.1, num_classes=3, num_images=8,
                  batch_size=4, epochs=1)  # fmt: skip
    assert resolve_optimizer("SGD", **kwargs) == OptimizerChoice("SGD", 0.02, 0.9, 0.1)
    with pytest.raises(ValueError, match="unknown optimizer 'Adam'"):
        resolve_optimizer("Adam", **kwargs)


def test_linear_and_cosine_factors_go_from_one_to_lrf():
    for cosine in (False, True):
        lf = LRFactor(epochs=10, lrf=0.01, cosine=cosine)
        assert lf(0) == pytest.approx(1.0)
        assert lf(10) == pytest.approx(0.01)
    assert LRFactor(10, 0.01)(5) == pytest.approx(0.505)
    assert LRFactor(10, 0.01, cosine=True)(5) == pytest.approx(0.505)
    assert LRFactor(10, 0.01, cosine=True)(2) > LRFactor(10, 0.01)(2)


def test_scheduler_state_round_trips_through_weights_only_load():
    optimizer = build_optimizer(tiny_net(), OptimizerChoice("SGD", 0.01, 0.9, 0.0), 5e-4)
    scheduler = build_scheduler(optimizer, LRFactor(4, 0.1))
    optimizer.step()
    scheduler.step()
    buffer = io.BytesIO()
    torch.save({"s": scheduler.state_dict(), "o": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert state["s"]["last_epoch"] == 1
    assert optimizer.param_groups[1]["lr"] == pytest.approx(0.01 * LRFactor(4, 0.1)(1))


def test_warmup_floor_is_optional_and_warmup_can_be_disabled():
    assert warmup_iterations(3.0, 8, min_iterations=100) == 100  # 8.3.0's floor
    assert warmup_iterations(3.0, 1000, min_iterations=100) == 3000
    assert warmup_iterations(0.0, 1000) == 0
    # 8.4.190 has no floor: its coco16b run (16 images, batch 8) warms up over 3 · 2 iterations
    assert warmup_iterations(3.0, 2, min_iterations=0) == 6
    assert warmup_iterations(0.0, 2, min_iterations=0) == 0


def test_accumulate_reaches_nominal_batch():
    assert accumulate_steps(64, 16) == 4
    assert accumulate_steps(64, 128) == 1


def test_warmup_ramps_bias_lr_down_weights_lr_and_momentum_up():
    optimizer = build_optimizer(tiny_net(), OptimizerChoice("SGD", 0.01, 0.937, 0.1), 5e-4)
    build_scheduler(optimizer, LRFactor(10, 0.01))  # sets initial_lr
    kwargs = dict(warmup_iters=100, epoch_factor=1.0, warmup_bias_lr=0.1, warmup_momentum=0.8,
                  momentum=0.937, nbs=64, batch_size=16)  # fmt: skip
    assert apply_warmup(optimizer, iteration=0, **kwargs) == 1
    lrs = [g["lr"] for g in optimizer.param_groups]
    assert lrs == pytest.approx([0.1, 0.0, 0.0])
    assert optimizer.param_groups[0]["momentum"] == pytest.approx(0.8)
    assert apply_warmup(optimizer, iteration=50, **kwargs) == 2  # round(2.5) -> 2 (half to even)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.055)
    assert optimizer.param_groups[1]["lr"] == pytest.approx(0.005)
    assert apply_warmup(optimizer, iteration=100, **kwargs) == 4
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.01] * 3)
    assert optimizer.param_groups[2]["momentum"] == pytest.approx(0.937)
