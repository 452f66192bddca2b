"""Model EMA (spec 4.4)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from yolo_mlops.yolo.train.ema import ModelEMA, unwrap


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def test_decay_ramps_from_zero_towards_0_9999():
    ema = ModelEMA(net())
    assert ema.factor() == 0.0
    ema.updates = 2000
    assert ema.factor() == pytest.approx(0.9999 * (1 - math.exp(-1)))
    ema.updates = 10**6
    assert ema.factor() == pytest.approx(0.9999)


def test_update_blends_float_entries_and_keeps_integer_buffers():
    model = net()
    ema = ModelEMA(model)
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model[1].num_batches_tracked += 7
    ema.updates = 1999  # next update uses updates = 2000
    ema.update(model)
    d = 0.9999 * (1 - math.exp(-1))
    after = ema.module.state_dict()
    expected = d * before["0.weight"] + (1 - d) * model.state_dict()["0.weight"]
    torch.testing.assert_close(after["0.weight"], expected)
    assert after["1.num_batches_tracked"] == before["1.num_batches_tracked"]
    assert ema.updates == 2000


def test_first_update_copies_the_model():
    model = net()
    ema = ModelEMA(model)
    with torch.no_grad():
        model[0].weight.mul_(3)
    ema.update(model)  # d = 0.9999 * (1 - exp(-1/2000)) ~ 5e-4
    torch.testing.assert_close(ema.module[0].weight, model[0].weight, rtol=1e-3, atol=1e-3)


def test_ema_model_is_frozen_eval_copy_and_state_round_trips():
    model = net()
    ema = ModelEMA(model)
    assert not ema.module.training
    assert not any(p.requires_grad for p in ema.module.parameters())
    ema.update(model)
    other = ModelEMA(net())
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1
    for a, b in zip(
        other.module.state_dict().values(), ema.module.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b)


def test_unwrap_returns_the_inner_module_of_a_wrapper():
    model = net()
    assert unwrap(nn.DataParallel(model)) is model
    assert unwrap(model) is model
