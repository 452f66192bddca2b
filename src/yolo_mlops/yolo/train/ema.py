"""Exponential moving average of model weights (spec section 4.4).

The EMA model is a deep copy in eval mode, updated after every optimizer step with
``d = decay * (1 - exp(-updates / tau))``: early updates follow the model closely, later ones
average over about ``1 / (1 - decay)`` steps. Every floating-point ``state_dict`` entry
(parameters and BatchNorm running statistics) is averaged; integer buffers
(``num_batches_tracked``) are copied unchanged, i.e. left as they are.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside a ``DistributedDataParallel``/``DataParallel`` wrapper."""
    return model.module if hasattr(model, "module") else model


class ModelEMA:
    """EMA of a model's floating-point state.

    Attributes:
        module: the averaged model (eval mode, no gradients).
        updates: number of updates so far (drives the decay ramp).
    """

    def __init__(
        self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0
    ) -> None:
        self.module = copy.deepcopy(unwrap(model)).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)
        self.decay = decay
        self.tau = tau
        self.updates = updates

    def factor(self) -> float:
        """The current decay ``d`` (weight of the old average)."""
        return self.decay * (1 - math.exp(-self.updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend ``model``'s floating-point state in: ``ema = d * ema + (1 - d) * model``."""
        self.updates += 1
        d = self.factor()
        model_state = unwrap(model).state_dict()
        averaged, current = [], []
        for name, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                averaged.append(value)
                current.append(model_state[name].detach().to(value.dtype))
        # lerp(ema, model, 1 - d) == d * ema + (1 - d) * model, in one fused call per list
        torch._foreach_lerp_(averaged, current, 1.0 - d)

    def state_dict(self) -> dict:
        """Plain state for checkpoints: the averaged weights (float) and the update count."""
        return {
            "state_dict": {k: v.detach().clone() for k, v in self.module.state_dict().items()},
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore from :meth:`state_dict`."""
        self.module.load_state_dict(state["state_dict"])
        self.updates = int(state["updates"])
