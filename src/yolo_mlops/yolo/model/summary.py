"""Parameter and FLOP summary of a model, counted by running it symbolically.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matmuls and the
attention product; 1 multiply-add = 2 FLOPs) on a ``1×3×imgsz×imgsz`` input. The forward runs on
the ``meta`` device with the model's parameters replaced by shape-only stand-ins, so it is instant
at any size and never touches the real weights. Element-wise ops (BN, SiLU, pooling) are not
counted, like the usual thop-based figure (yolo11n ≈ 6.6 GFLOPs at 640).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode


def count_flops(model: nn.Module, imgsz: int | tuple[int, int] = 640) -> int:
    """FLOPs of one forward pass of a single ``3 × H × W`` image (``imgsz`` int = square)."""
    height, width = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    meta_state = {
        name: torch.empty_like(t, device="meta")
        for name, t in [*model.named_parameters(), *model.named_buffers()]
    }
    image = torch.zeros(1, 3, height, width, device="meta")
    was_training = model.training
    model.eval()  # BN uses running statistics: no buffer updates
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            functional_call(model, meta_state, (image,))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def model_summary(model: nn.Module, imgsz: int = 640) -> dict[str, float | int]:
    """``{"params", "gradients", "trainable", "gflops", "layers", "imgsz"}`` for ``model``.

    ``params`` counts every parameter (yolo11n: 2,624,080), ``gradients``/``trainable`` only those
    with ``requires_grad`` (the 16 fixed DFL weights are excluded), ``layers`` the leaf modules.
    """
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    layers = sum(1 for m in model.modules() if next(m.children(), None) is None)
    return {
        "params": params,
        "gradients": trainable,
        "trainable": trainable,
        "gflops": count_flops(model, imgsz) / 1e9,
        "layers": layers,
        "imgsz": imgsz,
    }


def format_summary(summary: dict[str, float | int]) -> str:
    """One line for logs: ``181 layers, 2,624,080 parameters, 2,624,064 gradients, 6.6 GFLOPs``."""
    return (
        f"{summary['layers']} layers, {summary['params']:,} parameters, "
        f"{summary['gradients']:,} gradients, {summary['gflops']:.1f} GFLOPs "
        f"at {summary['imgsz']}"
    )
