"""Which torch device to run on: ``auto`` picks CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import torch


def select_device(name: str) -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; otherwise ``torch.device(name)``."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(int(name) if name.isdigit() else name)  # "0" = the first GPU
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"training.device={name!r} but CUDA is not available")
    return device
