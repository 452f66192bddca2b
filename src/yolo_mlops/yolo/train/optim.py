"""Optimizer, learning-rate schedule and warmup of the YOLO11 training recipe (design §4).

* Parameters are split into three groups in the order ``[biases, decayed weights, BN weights]``;
  only group 1 gets weight decay. Group 0 (biases) gets its own warmup learning rate.
* ``optimizer="auto"`` picks SGD for long runs (more than 10,000 optimizer iterations) and AdamW
  with a class-count-dependent learning rate otherwise, as the reference does.
* The learning rate follows a per-epoch ``LambdaLR`` (linear or cosine from 1 to ``lrf``); during
  warmup every iteration interpolates lr, momentum and the accumulation count linearly.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

LOGGER = logging.getLogger(__name__)

AUTO_SGD_MIN_ITERATIONS = 10_000


@dataclass(frozen=True)
class OptimizerChoice:
    """The optimizer actually used after resolving ``auto``.

    Attributes:
        name: "SGD" or "AdamW".
        lr0: initial learning rate.
        momentum: SGD momentum or Adam beta1.
        warmup_bias_lr: warmup start lr of the bias group (``auto`` forces 0.0).
    """

    name: str
    lr0: float
    momentum: float
    warmup_bias_lr: float


def resolve_optimizer(
    name: str,
    *,
    lr0: float,
    momentum: float,
    warmup_bias_lr: float,
    num_classes: int,
    num_images: int,
    batch_size: int,
    epochs: int,
    nbs: int = 64,
) -> OptimizerChoice:
    """Resolve ``auto`` into SGD or AdamW by the reference rule; pass other names through.

    ``iterations = ceil(num_images / max(batch, nbs)) * epochs``; above 10,000 -> SGD(lr 0.01,
    momentum 0.9), else AdamW(lr = round(0.002 * 5 / (4 + nc), 6), beta1 0.9). ``auto`` ignores
    the user's lr0 and momentum and sets the bias warmup lr to 0.

    Raises:
        ValueError: for an unknown optimizer name.
    """
    if name == "auto":
        iterations = math.ceil(num_images / max(batch_size, nbs)) * epochs
        if iterations > AUTO_SGD_MIN_ITERATIONS:
            choice = OptimizerChoice("SGD", 0.01, 0.9, 0.0)
        else:
            choice = OptimizerChoice("AdamW", round(0.002 * 5 / (4 + num_classes), 6), 0.9, 0.0)
        LOGGER.info(
            "optimizer auto -> %s(lr=%g, momentum=%g) for %d iterations",
            choice.name,
            choice.lr0,
            choice.momentum,
            iterations,
        )
        return choice
    if name not in ("SGD", "AdamW"):
        raise ValueError(f"unknown optimizer {name!r}: use SGD, AdamW or auto (training.optimizer)")
    return OptimizerChoice(name, lr0, momentum, warmup_bias_lr)


def split_parameters(
    model: nn.Module,
) -> tuple[list[nn.Parameter], list[nn.Parameter], list[nn.Parameter]]:
    """Split trainable parameters into (biases, decayed weights, normalisation weights).

    A parameter whose name contains "bias" is a bias; weights of normalisation layers (BatchNorm,
    GroupNorm, LayerNorm...) are not decayed; every other weight is. Frozen parameters
    (``requires_grad=False``, e.g. the DFL conv) are left out.
    """
    biases: list[nn.Parameter] = []
    decayed: list[nn.Parameter] = []
    norm_weights: list[nn.Parameter] = []
    norm_types = tuple(v for k, v in vars(nn).items() if "Norm" in k and isinstance(v, type))
    for module in model.modules():
        for param_name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if "bias" in param_name:
                biases.append(param)
            elif isinstance(module, norm_types):
                norm_weights.append(param)
            else:
                decayed.append(param)
    return biases, decayed, norm_weights


def build_optimizer(
    model: nn.Module, choice: OptimizerChoice, weight_decay: float
) -> torch.optim.Optimizer:
    """The optimizer with groups ``[biases (no decay), weights (decay), BN weights (no decay)]``.

    ``weight_decay`` is the value actually applied (the caller scales it by
    ``batch * accumulate / nbs``). SGD uses Nesterov momentum (when momentum > 0); AdamW uses
    betas (momentum, 0.999). Both use the multi-tensor (``foreach``) update on every device
    (PyTorch picks it by default on CUDA only): one call per operation for all parameters.
    """
    biases, decayed, norm_weights = split_parameters(model)
    if choice.name == "SGD":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            biases,
            lr=choice.lr0,
            momentum=choice.momentum,
            nesterov=choice.momentum > 0,
            foreach=True,
        )
    else:
        optimizer = torch.optim.AdamW(
            biases, lr=choice.lr0, betas=(choice.momentum, 0.999), weight_decay=0.0, foreach=True
        )
    optimizer.add_param_group({"params": decayed, "weight_decay": weight_decay})
    optimizer.add_param_group({"params": norm_weights, "weight_decay": 0.0})
    LOGGER.info(
        "%s(lr=%g, momentum=%g): %d bias, %d weight(decay=%g), %d norm-weight parameters",
        choice.name,
        choice.lr0,
        choice.momentum,
        len(biases),
        len(decayed),
        weight_decay,
        len(norm_weights),
    )
    return optimizer


@dataclass(frozen=True)
class LRFactor:
    """Per-epoch learning-rate factor ``lf(e)``; a plain object so ``LambdaLR`` can save it.

    linear: ``(1 - e/epochs) * (1 - lrf) + lrf``; cosine: ``((1 - cos(e*pi/epochs)) / 2) *
    (lrf - 1) + 1``. Both go from 1 at e=0 to ``lrf`` at e=epochs.
    """

    epochs: int
    lrf: float
    cosine: bool = False

    def __call__(self, epoch: float) -> float:
        if self.cosine:
            return ((1 - math.cos(epoch * math.pi / self.epochs)) / 2) * (self.lrf - 1) + 1
        return (1 - epoch / self.epochs) * (1.0 - self.lrf) + self.lrf


def build_scheduler(
    optimizer: torch.optim.Optimizer, factor: LRFactor
) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` with the same factor for every group (stepped once per epoch)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=factor)


def warmup_iterations(warmup_epochs: float, batches_per_epoch: int, min_iterations: int = 0) -> int:
    """Warmup iterations: ``max(round(warmup_epochs * batches), min_iterations)``; 0 disables it.

    ``min_iterations`` 100 is Ultralytics 8.3.0's floor; 8.4.190 has none (0): on 16 images at
    batch 8 its reference run warms up over 6 iterations, where the floor makes it 100.
    """
    if warmup_epochs <= 0:
        return 0
    return max(round(warmup_epochs * batches_per_epoch), min_iterations)


def accumulate_steps(nbs: int, batch_size: int) -> int:
    """Batches per optimizer step so that the effective batch is about ``nbs``."""
    return max(round(nbs / batch_size), 1)


def apply_warmup(
    optimizer: torch.optim.Optimizer,
    *,
    iteration: int,
    warmup_iters: int,
    epoch_factor: float,
    warmup_bias_lr: float,
    warmup_momentum: float,
    momentum: float,
    nbs: int,
    batch_size: int,
) -> int:
    """Set lr/momentum of every group for global ``iteration`` inside the warmup; return accumulate.

    Linear interpolation over ``[0, warmup_iters]``: group 0 lr from ``warmup_bias_lr`` and the
    others from 0 to ``initial_lr * epoch_factor``; momentum (SGD only) from ``warmup_momentum``
    to ``momentum``; the accumulation count from 1 to ``nbs / batch_size`` (rounded, >= 1).
    """
    xi = [0, warmup_iters]
    accumulate = max(1, int(np.interp(iteration, xi, [1, nbs / batch_size]).round()))
    for index, group in enumerate(optimizer.param_groups):
        start = warmup_bias_lr if index == 0 else 0.0
        group["lr"] = float(np.interp(iteration, xi, [start, group["initial_lr"] * epoch_factor]))
        if "momentum" in group:
            group["momentum"] = float(np.interp(iteration, xi, [warmup_momentum, momentum]))
    return accumulate
