"""The training configuration (the ``training`` parameter block), the result, device choice."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from yolo_mlops.yolo.io.weights import OFFICIAL_BASE_URL, check_sha256
from yolo_mlops.yolo.model.network import SCALES
from yolo_mlops.yolo.train.compile import compile_backend
from yolo_mlops.yolo.train.precision import Bf16Setting


@dataclass
class TrainConfig:
    """The ``training`` parameter block (defaults = the reference recipe, design §4).

    The image size comes from the image cache. ``resume``: False, True (``save_dir/last.pt``) or
    a checkpoint path. ``pretrained``: "" (scratch), or a local file (our checkpoint or an
    Ultralytics ``.pt``) whose scale must be ``scale``; an official name (``yolo11n.pt``) or URL
    is fetched by the Kedro layer (``yolo_mlops.weights_cache``) from ``weights_base_url`` and
    checked against ``pretrained_sha256`` before the trainer gets the local path.
    ``threads``: torch intra-op threads (0 = torch's default). ``workers``: loader processes; on
    a GPU up to the process's share of the cores, on a CPU only the cores the training threads
    leave free (``yolo.train.loader_workers``: 0 on 2 cores with torch's default threads).
    ``device`` may list GPUs (``0,1,2,3`` or ``cuda:0,1``: one DDP process each) and ``nproc``
    asks for that many DDP processes on one device type (CPU: gloo); the Kedro node launches
    them with torchrun, the ``Trainer`` itself runs one process. ``dist_timeout_s``: how long a
    collective waits for a stalled or dead peer before the process group fails.
    ``channels_last``: NHWC weights and inputs (same arithmetic; on 2 CPU cores, whole epochs:
    +2% images/s at 320, +9% at 640 in one comparison, within run-to-run drift in another).
    ``warmup_min_iters``: a floor on warmup iterations (0 = none, as 8.4.190; 8.3.0 used 100).
    ``tal_min_side`` (ground-truth sides shorter than this, in input pixels, are widened to it
    when the assigner selects candidate anchors) defaults to Ultralytics 8.3.0's behaviour; 8.4
    uses 16 (design §10 records the measured decision).
    ``cpu_memory_reuse``: keep freed memory in the process (glibc ``mallopt``) so CPU steps stop
    paying page faults (``yolo.train.cpu_memory``; a bare 320 step 1.67 vs 1.79-1.97 s on 2
    cores).
    ``bf16``: bfloat16 autocast of the CPU forward pass: ``auto`` (on where the CPU has native
    bf16, AVX-512-BF16 or AMX), true, false. With ``bf16_after_steps: 60`` it matched float32 on
    the coco16b anchor (design §13).
    ``bf16_after_steps``: a bf16 run from scratch trains in float32 until this many optimizer
    steps are done (rounded up to whole epochs; 0 = bf16 from the start): a fresh yolo11n turns
    bf16's rounding into gradient noise for its first few dozen updates (design §13).
    ``compile``: ``torch.compile`` the training forward (false, true = inductor, or a backend
    name); a compiler failure falls back to eager (``yolo.train.compile``).
    The augmentation settings are the preprocessing block's ``AugmentConfig`` (passed to
    :class:`Trainer` separately).
    """

    scale: Literal["n", "s", "m", "l", "x"] = "n"
    epochs: int = 100
    batch: int = 16
    optimizer: Literal["SGD", "AdamW", "auto"] = "auto"
    lr0: float = 0.01
    lrf: float = 0.01
    momentum: float = 0.937
    weight_decay: float = 5e-4
    warmup_epochs: float = 3.0
    warmup_min_iters: int = 0
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.1
    cos_lr: bool = False
    nbs: int = 64
    close_mosaic: int = 10
    patience: int = 100
    seed: int = 0
    deterministic: bool = True
    device: str = "auto"
    nproc: int = 1
    dist_timeout_s: float = 1800.0
    workers: int = 0
    threads: int = 0
    amp: bool = True
    bf16: Bf16Setting = "auto"
    bf16_after_steps: int = 60
    channels_last: bool = True
    compile: bool | str = False
    cpu_memory_reuse: bool = True
    sync_bn: bool = False
    clip_grad: float = 10.0
    tal_min_side: float = 0.0
    pretrained: str | None = ""  # None (`--params training.pretrained=`) = "" = from scratch
    pretrained_sha256: str | None = None
    weights_base_url: str = OFFICIAL_BASE_URL
    resume: bool | str = False
    save_dir: str = "data/06_models/run"
    train_split: str = "train"
    val_split: str = "val"
    val_batch: int = 32
    val: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch < 1 or self.nbs < 1:
            raise ValueError("epochs, batch and nbs must be >= 1")
        if self.lr0 <= 0 or not 0 < self.lrf <= 1:
            raise ValueError("lr0 must be > 0 and lrf in (0, 1]")
        self.pretrained_sha256 = check_sha256(self.pretrained_sha256, "training.pretrained_sha256")
        self.pretrained = self.pretrained or ""
        if self.nproc < 1 or self.dist_timeout_s <= 0:
            raise ValueError("training.nproc must be >= 1 and training.dist_timeout_s > 0")
        if self.optimizer not in ("SGD", "AdamW", "auto"):
            raise ValueError(f"training.optimizer={self.optimizer!r}: use SGD, AdamW or auto")
        if self.warmup_min_iters < 0:
            raise ValueError(f"training.warmup_min_iters={self.warmup_min_iters}: must be >= 0")
        if self.tal_min_side < 0:
            raise ValueError(f"training.tal_min_side={self.tal_min_side}: must be >= 0 (pixels)")
        if self.bf16 not in (True, False, "auto"):
            raise ValueError(f"training.bf16={self.bf16!r}: use true, false or auto")
        if self.bf16_after_steps < 0:
            raise ValueError(f"training.bf16_after_steps={self.bf16_after_steps}: must be >= 0")
        compile_backend(self.compile)  # a bad value fails here, naming the parameter
        if self.scale not in SCALES:
            raise ValueError(f"training.scale={self.scale!r}: use one of {', '.join(SCALES)}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainConfig:
        """A config from plain values (already typed); an unknown key is an error naming it."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown training parameter(s) {', '.join(f'training.{k}' for k in unknown)}"
            )
        return cls(**values)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` leaves behind: checkpoint paths, history, best fitness."""

    last: Path
    best: Path
    history: list[dict[str, float]]
    best_fitness: float
    stopped_early: bool
