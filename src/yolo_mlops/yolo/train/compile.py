"""Optional ``torch.compile`` of the training forward pass, with a clean fallback to eager.

``training.compile``: ``false`` (default), ``true`` (the ``inductor`` backend) or a backend name
(``inductor``, ``aot_eager``, ``eager``, ...). Compilation happens lazily on the first batch; when
it fails (no C++ compiler, an unsupported operator, a backend error) the failure is logged once
and training continues in eager mode with the same weights, so a run never dies of it.

Measured on 2 AMD EPYC cores (AVX2), yolo11n at 320, batch 16: inductor took about 5 minutes to
compile the training graph and its steady step was slower than eager (2.04 vs 1.79 s), so it is
off by default; on CUDA it fuses the BatchNorm/SiLU chains that eager runs as separate kernels.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

LOGGER = logging.getLogger(__name__)


def compile_backend(setting: bool | str) -> str | None:
    """The backend ``training.compile`` asks for (``None`` = eager).

    Raises:
        ValueError: for an empty or non-string, non-bool value.
    """
    if setting is False or setting is None:
        return None
    if setting is True:
        return "inductor"
    if isinstance(setting, str) and setting.strip():
        name = setting.strip()
        return None if name.lower() in {"false", "off", "none"} else name
    raise ValueError(f"training.compile={setting!r}: use false, true or a torch.compile backend")


class CompiledForward(nn.Module):
    """``forward`` through ``torch.compile(model)``; eager ``model`` if compiling fails.

    ``module`` is the bare model (what EMA and checkpoints read, see ``ema.unwrap``); ``model``
    may be the same module or its ``DistributedDataParallel`` wrapper. Parameters are shared, so
    the optimizer, gradient clipping and checkpoints see one set of tensors.
    """

    def __init__(self, model: nn.Module, bare: nn.Module, backend: str) -> None:
        super().__init__()
        self.module = bare
        self.wrapped = model if model is not bare else None
        self.backend = backend
        self._compiled = torch.compile(model, backend=backend)
        self._checked = False

    @property
    def compiled(self) -> bool:
        """True while the compiled forward is in use."""
        return self._compiled is not None

    def _eager(self) -> nn.Module:
        return self.wrapped if self.wrapped is not None else self.module

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Same contract as the model's ``forward``."""
        if self._compiled is None:
            return self._eager()(images)
        if self._checked:
            return self._compiled(images)
        try:
            out = self._compiled(images)
        except Exception as error:  # any compiler failure falls back to eager
            LOGGER.warning(
                "torch.compile (backend %s) failed, training continues in eager mode: %s: %s",
                self.backend,
                type(error).__name__,
                str(error).splitlines()[0] if str(error) else "",
            )
            self._compiled = None
            return self._eager()(images)
        self._checked = True
        LOGGER.info("training forward compiled with torch.compile (backend %s)", self.backend)
        return out


def maybe_compile(model: nn.Module, bare: nn.Module, setting: bool | str) -> nn.Module:
    """``model`` wrapped in :class:`CompiledForward` when ``setting`` asks for a backend."""
    backend = compile_backend(setting)
    if backend is None:
        return model
    return CompiledForward(model, bare, backend)
