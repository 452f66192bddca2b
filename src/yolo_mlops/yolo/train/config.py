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
    """The ``training`` parameter block, one comment per knob.

    The defaults are the reference recipe (design §4) and equal the values of
    ``conf/base/parameters_training.yml`` (a test holds them equal), with two deliberate
    exceptions said at their fields: ``pretrained`` and ``tal_min_side``. The image size comes
    from the image cache; the augmentation is the preprocessing block's ``AugmentConfig``, passed
    to :class:`Trainer` separately. Several processes (``device`` listing GPUs, ``nproc``) are
    launched by the Kedro node with torchrun: the ``Trainer`` itself runs one process.
    """

    scale: Literal["n", "s", "m", "l", "x"] = "n"  # YOLO11 scale; the pretrained weights' scale
    epochs: int = 100
    batch: int = 16  # images per step, all DDP processes together
    # auto: the reference's choice, AdamW for short runs and SGD beyond 10,000 iterations
    optimizer: Literal["SGD", "AdamW", "auto"] = "auto"
    lr0: float = 0.01  # initial learning rate (auto chooses its own)
    lrf: float = 0.01  # final learning rate = lr0 * lrf
    momentum: float = 0.937  # SGD momentum / Adam beta1; also where warmup momentum ends
    weight_decay: float = 5e-4  # scaled by batch * accumulate / nbs
    warmup_epochs: float = 3.0  # linear warmup of learning rate and momentum
    warmup_min_iters: int = 0  # floor on warmup iterations: 0 as 8.4.190, 100 as 8.3.0
    warmup_momentum: float = 0.8  # momentum at the start of warmup
    warmup_bias_lr: float = 0.1  # bias learning rate at the start of warmup (auto: 0)
    cos_lr: bool = False  # cosine instead of linear learning-rate decay
    nbs: int = 64  # nominal batch: gradients are accumulated up to it
    close_mosaic: int = 10  # the last epochs train without mosaic
    patience: int = 100  # early stop after this many epochs without a better fitness
    seed: int = 0  # weights init and augmentation (a sample = f(seed, epoch, index))
    deterministic: bool = True  # torch's deterministic algorithms
    device: str = "auto"  # auto | cpu | cuda:N | mps | a GPU list 0,1,2,3 (one DDP process each)
    nproc: int = 1  # DDP processes on one device type (CPU: gloo)
    dist_timeout_s: float = 1800.0  # seconds a collective waits for a stalled or dead peer
    # Loader processes per training process, an upper bound: yolo.train.loader_workers gives a
    # GPU run up to its share of the cores and a CPU run only the cores its threads leave free
    # (0 on 2 cores), so conf/base's 8 suits every machine.
    workers: int = 8
    threads: int = 0  # torch intra-op threads; 0 = torch's default
    amp: bool = True  # float16 autocast and GradScaler on CUDA
    bf16: Bf16Setting = "auto"  # CPU bfloat16 autocast: auto = where the CPU has native bf16
    # A bf16 run from scratch trains its first optimizer steps in float32 (rounded up to whole
    # epochs; 0 = bf16 from the start): a fresh model turns bf16 rounding into noise (design §13).
    bf16_after_steps: int = 60
    channels_last: bool = True  # NHWC weights and inputs: same arithmetic, faster CPU kernels
    compile: bool | str = False  # torch.compile the forward: true = inductor, or a backend name
    cpu_memory_reuse: bool = True  # CPU: keep freed memory in the process, fewer page faults
    sync_bn: bool = False  # SyncBatchNorm under DDP on CUDA
    clip_grad: float = 10.0  # max total gradient norm; 0 = no clipping
    # GT sides shorter than this (input px) are widened to it when the assigner picks candidate
    # anchors: 0 = Ultralytics 8.3.0's rule, 16 = 8.4's. Only a benchmark sets it (--set), so it
    # is not offered in conf/ (design §10 records the measured decision).
    tal_min_side: float = 0.0
    # "" (or None) = from scratch, else a local file (ours or an Ultralytics .pt) of scale
    # `scale`. The library reads local files only: conf/base names the official yolo11n.pt,
    # which the Kedro layer (yolo_mlops.ingestion.weights_cache) fetches and passes as a path.
    pretrained: str | None = ""
    pretrained_sha256: str | None = None  # expected sha256 of the weights file; None = no check
    weights_base_url: str = OFFICIAL_BASE_URL  # where official names are fetched from
    resume: bool | str = False  # False | True (save_dir/last.pt) | a checkpoint path
    save_dir: str = "data/06_models/run"  # per-epoch last.pt / best.pt with the resume state
    train_split: str = "train"
    val_split: str = "val"
    val_batch: int = 32  # batch size of the per-epoch validation
    val: bool = True  # validate every epoch (off: best.pt = the final EMA, patience ignored)
    progress: bool = True  # progress bar per epoch

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
