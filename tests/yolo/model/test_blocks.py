"""Building blocks: the channel concatenation and the gradients a channels-last model hands back."""

from __future__ import annotations

import copy

import pytest
import torch

from yolo_mlops.yolo.model.blocks import Conv, cat_channels
from yolo_mlops.yolo.model.network import build_model


def _maps(memory_format: torch.memory_format) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [
        torch.randn(2, c, 5, 7, generator=generator)
        .contiguous(memory_format=memory_format)
        .requires_grad_()
        for c in (3, 8, 5)
    ]


@pytest.mark.parametrize("memory_format", [torch.channels_last, torch.contiguous_format])
def test_cat_channels_gives_torch_cat_values_and_gradient_slices(memory_format):
    xs = _maps(memory_format)
    out = cat_channels(xs)
    assert torch.equal(out, torch.cat(xs, 1))
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    out.backward(upstream.contiguous(memory_format=memory_format))
    for x, expected in zip(xs, upstream.split([3, 8, 5], 1), strict=True):
        assert torch.equal(x.grad, expected)
        assert x.grad.is_contiguous(memory_format=memory_format)


def test_cat_channels_of_channel_slices_gives_dense_channels_last_gradients():
    whole = _maps(torch.channels_last)[1]  # [2, 8, 5, 7]
    halves = list(whole.split(4, 1))  # channel slices: strided in channels-last memory
    assert not halves[0].is_contiguous(memory_format=torch.channels_last)
    out = cat_channels([halves[1], halves[0]])
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    upstream = upstream.contiguous(memory_format=torch.channels_last)
    grads = torch.autograd.grad(out, halves, upstream)
    for grad, expected in zip(grads, reversed(upstream.split(4, 1)), strict=True):
        assert torch.equal(grad, expected)
        assert grad.is_contiguous(memory_format=torch.channels_last)


def test_cat_channels_without_autograd_is_torch_cat():
    xs = [x.detach() for x in _maps(torch.channels_last)]
    assert torch.equal(cat_channels(xs), torch.cat(xs, 1))
    with torch.no_grad():
        assert cat_channels(_maps(torch.channels_last)).grad_fn is None


def _conv_output_grads(model: torch.nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The gradient reaching each Conv block's output, by module name."""
    grads: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, Conv):

            def keep(_module, _inputs, out, name=name):
                out.register_hook(lambda grad: grads.__setitem__(name, grad))

            handles.append(module.register_forward_hook(keep))
    maps = model(images)
    sum((m * torch.linspace(-1, 1, m.numel()).view_as(m)).sum() for m in maps).backward()
    for handle in handles:
        handle.remove()
    return grads


def test_channels_last_training_hands_every_conv_a_dense_gradient():
    torch.manual_seed(0)
    model = build_model("n", num_classes=3).train().to(memory_format=torch.channels_last)
    images = torch.rand(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    grads = _conv_output_grads(model, images)
    assert len(grads) > 70  # every Conv block of yolo11n
    strided = [
        name
        for name, grad in grads.items()
        if not grad.is_contiguous(memory_format=torch.channels_last) and not grad.is_contiguous()
    ]
    assert strided == []  # without cat_channels, the 18 concatenated outputs got channel slices


def test_channels_last_gives_the_nchw_weight_gradients():
    torch.manual_seed(0)
    nchw = build_model("n", num_classes=3).train()
    nhwc = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
    images = torch.rand(4, 3, 128, 128)
    _conv_output_grads(nchw, images)
    _conv_output_grads(nhwc, images.contiguous(memory_format=torch.channels_last))
    for (name, a), b in zip(nchw.named_parameters(), nhwc.parameters(), strict=True):
        if a.grad is None:
            assert b.grad is None, name
            continue
        # float32 sums in another order differ by up to ~1.3e-4 of a tensor's largest gradient
        # here; the BatchNorm biases in front of another normalisation have a zero true
        # gradient, ~1e-5 of rounding. A mis-sliced gradient would differ by its whole size.
        scale = a.grad.abs().max().item()
        torch.testing.assert_close(b.grad, a.grad, rtol=0, atol=1e-3 * scale + 1e-4, msg=name)
