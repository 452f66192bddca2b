"""Reduced precision of the training forward pass: CUDA float16 AMP and CPU bfloat16 (design §13).

``autocast_dtype`` resolves ``training.amp`` / ``training.bf16`` on a device; ``first_bf16_epoch``
says from which epoch a bf16 run leaves float32: from scratch, yolo11n turns bf16's rounding into
gradient noise for its first few dozen updates, so such a run starts in float32.
"""

from __future__ import annotations

import logging
import math
import platform
from typing import Literal

import torch

LOGGER = logging.getLogger(__name__)

#: ``training.bf16``: on, off, or on exactly where the CPU computes bfloat16 in hardware.
Bf16Setting = bool | Literal["auto"]


def native_bf16() -> bool:
    """True when this CPU has bfloat16 arithmetic in hardware (AVX-512-BF16 or AMX on x86).

    oneDNN then runs bf16 convolutions natively. Its own check
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) also accepts any AVX-512 CPU, where it
    emulates bf16, so x86 asks for the instructions; other CPUs (ARM's BF16 extension) use it.
    Without native bf16 a training step was about 9x slower than in float32 (AVX2, design §12).
    """
    try:
        if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported():
            return True
        if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
            return False
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without these checks or without oneDNN
        return False


def autocast_dtype(
    device: torch.device, *, amp: bool, bf16: Bf16Setting, warn: bool = True
) -> torch.dtype | None:
    """The autocast dtype of the training forward pass on ``device`` (None = float32).

    CUDA: float16 when ``amp``. CPU: bfloat16 when ``bf16`` is true, or when it is ``"auto"`` and
    the CPU has native bf16 (:func:`native_bf16`); a forced ``true`` without it warns (unless
    ``warn`` is off) that the step is emulated. The loss, the assigner, the optimizer and the EMA
    stay float32 either way.
    """
    if device.type == "cuda":
        return torch.float16 if amp else None
    if device.type != "cpu" or bf16 is False:
        return None
    native = native_bf16()
    if bf16 == "auto":
        return torch.bfloat16 if native else None
    if not native and warn:
        LOGGER.warning(
            "training.bf16=true on a CPU without native bfloat16 (AVX-512-BF16 or AMX): oneDNN "
            "emulates it and a step is about 9x slower than float32; use bf16: auto or false"
        )
    return torch.bfloat16


def float32_steps(dtype: torch.dtype | None, *, fp32_steps: int, from_scratch: bool) -> int:
    """Optimizer steps a run trains in float32 before ``dtype`` takes over (``bf16_after_steps``).

    ``fp32_steps`` for a bfloat16 run from scratch, else 0: a run from trained weights, a float16
    (CUDA AMP) run and a float32 run never switch.
    """
    if dtype is not torch.bfloat16 or not from_scratch:
        return 0
    return max(fp32_steps, 0)


def first_bf16_epoch(
    dtype: torch.dtype | None, *, fp32_steps: int, steps_per_epoch: float, from_scratch: bool
) -> int:
    """The first (0-based) epoch trained under ``dtype`` when it is bfloat16, else 0.

    The :func:`float32_steps` of the run, rounded up to whole epochs of ``steps_per_epoch``
    steps (> 0; a fraction when the optimizer steps every few batches).
    """
    steps = float32_steps(dtype, fp32_steps=fp32_steps, from_scratch=from_scratch)
    return math.ceil(steps / steps_per_epoch) if steps else 0


def autocast_label(dtype: torch.dtype) -> str:
    """``"bfloat16 autocast"`` / ``"float16 autocast"``: how logs and run tags name ``dtype``."""
    return f"{str(dtype).removeprefix('torch.')} autocast"


def describe(dtype: torch.dtype | None, first_epoch: int, epochs: int) -> str:
    """The precision ``epochs`` epochs train in, for the start-up log and the checkpoints.

    ``first_epoch``: the 0-based epoch ``dtype`` takes over (:func:`first_bf16_epoch`). E.g.
    ``"float32"``, ``"bfloat16 autocast"``, ``"bfloat16 autocast from epoch 31 (float32 before)"``,
    or, when the run ends first, ``"float32 (bfloat16 autocast would start at epoch 31)"``;
    ``" (emulated: no native bf16)"`` is added when bfloat16 runs on a CPU without it.
    """
    if dtype is None:
        return "float32"
    label = autocast_label(dtype)
    if first_epoch >= epochs:
        return f"float32 ({label} would start at epoch {first_epoch + 1})"
    if first_epoch > 0:
        label += f" from epoch {first_epoch + 1} (float32 before)"
    if dtype is torch.bfloat16 and not native_bf16():
        label += " (emulated: no native bf16)"
    return label
