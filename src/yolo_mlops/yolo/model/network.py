"""YOLO11 detection model in plain PyTorch: the Detect head and the full network.

Reads top to bottom: scale presets (data), the channel/depth rules, the Detect head, then YOLO11.
The building blocks (Conv, Bottleneck, C3k, C3k2, SPPF, Attention, PSABlock, C2PSA, DFL) are in
``blocks.py``. Layer indices and attribute names follow ``docs/design.md`` §1 so that
``state_dict()`` keys and shapes equal Ultralytics' (``model.<layer>.<attribute>...``) and their
checkpoints load without renaming.

``forward`` always returns the three raw head maps; ``decode.decode`` turns them into boxes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch
from torch import nn

from yolo_mlops.yolo.model.blocks import (
    C2PSA,
    DFL,
    SPPF,
    C3k2,
    Concat,
    Conv,
    DWConv,
)
from yolo_mlops.yolo.model.summary import format_summary, model_summary

logger = logging.getLogger(__name__)

# scale -> (depth multiple, width multiple, max channels), design §1.
SCALES: dict[str, tuple[float, float, int]] = {
    "n": (0.50, 0.25, 1024),
    "s": (0.50, 0.50, 1024),
    "m": (0.50, 1.00, 512),
    "l": (1.00, 1.00, 512),
    "x": (1.00, 1.50, 512),
}
STRIDES = (8, 16, 32)
REG_MAX = 16


def scaled_channels(channels: int, width: float, max_channels: int) -> int:
    """Channels after scaling: ``ceil(min(c, max) · width / 8) · 8`` (design §1)."""
    return math.ceil(min(channels, max_channels) * width / 8) * 8


def scaled_repeats(repeats: int, depth: float) -> int:
    """Block repeats after scaling: ``max(round(n · depth), 1)`` for ``n > 1`` (design §1)."""
    return max(round(repeats * depth), 1) if repeats > 1 else repeats


class Detect(nn.Module):
    """Decoupled head: per level a box branch ``cv2`` (4·reg_max logits) and a class branch ``cv3``.

    The class branch is YOLO11's depthwise form. ``dfl`` holds the fixed bin weights (used by
    ``decode`` through the same 0..15 expectation) and is kept for checkpoint compatibility.
    """

    def __init__(self, num_classes: int, channels: Sequence[int], reg_max: int = REG_MAX) -> None:
        super().__init__()
        self.nc = num_classes
        self.reg_max = reg_max
        self.no = num_classes + 4 * reg_max  # outputs per anchor
        box_width = max(16, channels[0] // 4, 4 * reg_max)
        cls_width = max(channels[0], min(num_classes, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(
                Conv(c, box_width, 3),
                Conv(box_width, box_width, 3),
                nn.Conv2d(box_width, 4 * reg_max, 1),
            )
            for c in channels
        )
        self.cv3 = nn.ModuleList(
            nn.Sequential(
                nn.Sequential(DWConv(c, c, 3), Conv(c, cls_width, 1)),
                nn.Sequential(DWConv(cls_width, cls_width, 3), Conv(cls_width, cls_width, 1)),
                nn.Conv2d(cls_width, num_classes, 1),
            )
            for c in channels
        )
        self.dfl = DFL(reg_max)

    @torch.no_grad()
    def init_biases(
        self, strides: Sequence[int] = STRIDES, imgsz: int = 640, box_bias: float = 1.0
    ) -> None:
        """Box bias ``box_bias`` (1.0 as in 8.3.0; 8.4 uses 2.0); class bias
        ``ln(5 / nc / (imgsz/s)²)`` (prior of ~5 objects per image)."""
        for box_branch, cls_branch, stride in zip(self.cv2, self.cv3, strides, strict=True):
            box_branch[-1].bias.fill_(box_bias)
            cls_branch[-1].bias.fill_(math.log(5 / self.nc / (imgsz / stride) ** 2))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """``[[B, C_i, H_i, W_i]] × 3 → [[B, 4·reg_max + nc, H_i, W_i]] × 3`` raw logits."""
        return [
            torch.cat((box(x), cls(x)), 1)
            for x, box, cls in zip(features, self.cv2, self.cv3, strict=True)
        ]


class YOLO11(nn.Module):
    """YOLO11 detector. ``self.model`` is the 24-layer list; index = Ultralytics layer index.

    Attributes: ``scale``, ``nc``, ``names`` (list of class names), ``stride`` (tensor
    ``[8, 16, 32]``, plain attribute, not in the state_dict), ``reg_max`` (16).
    """

    def __init__(
        self, scale: str = "n", num_classes: int = 80, names: Sequence[str] | None = None
    ) -> None:
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"unknown YOLO11 scale {scale!r}; choose one of {sorted(SCALES)}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.scale = scale
        self.nc = num_classes
        self.names = list(names) if names is not None else [f"class{i}" for i in range(num_classes)]
        if len(self.names) != num_classes:
            raise ValueError(f"{len(self.names)} names given for {num_classes} classes")
        self.reg_max = REG_MAX
        self.stride = torch.tensor(STRIDES, dtype=torch.float32)

        depth, width, max_ch = SCALES[scale]

        def ch(c: int) -> int:
            return scaled_channels(c, width, max_ch)

        n = scaled_repeats(2, depth)
        big = scale in ("m", "l", "x")  # these scales use C3k blocks in every C3k2 (design §1)
        c64, c128, c256, c512, c1024 = ch(64), ch(128), ch(256), ch(512), ch(1024)
        self.model = nn.ModuleList(
            [
                Conv(3, c64, 3, 2),  # 0  P1/2
                Conv(c64, c128, 3, 2),  # 1  P2/4
                C3k2(c128, c256, n, c3k=big, e=0.25),  # 2
                Conv(c256, c256, 3, 2),  # 3  P3/8
                C3k2(c256, c512, n, c3k=big, e=0.25),  # 4  -> P3 skip
                Conv(c512, c512, 3, 2),  # 5  P4/16
                C3k2(c512, c512, n, c3k=True),  # 6  -> P4 skip
                Conv(c512, c1024, 3, 2),  # 7  P5/32
                C3k2(c1024, c1024, n, c3k=True),  # 8
                SPPF(c1024, c1024, 5),  # 9
                C2PSA(c1024, c1024, n),  # 10 -> P5 skip
                nn.Upsample(scale_factor=2, mode="nearest"),  # 11
                Concat(),  # 12 cat(11, 6)
                C3k2(c1024 + c512, c512, n, c3k=big),  # 13
                nn.Upsample(scale_factor=2, mode="nearest"),  # 14
                Concat(),  # 15 cat(14, 4)
                C3k2(c512 + c512, c256, n, c3k=big),  # 16 P3 out
                Conv(c256, c256, 3, 2),  # 17
                Concat(),  # 18 cat(17, 13)
                C3k2(c256 + c512, c512, n, c3k=big),  # 19 P4 out
                Conv(c512, c512, 3, 2),  # 20
                Concat(),  # 21 cat(20, 10)
                C3k2(c512 + c1024, c1024, n, c3k=True),  # 22 P5 out
                Detect(num_classes, (c256, c512, c1024)),  # 23
            ]
        )
        self._initialize()

    def _initialize(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eps, module.momentum = 1e-3, 0.03
        self.head.init_biases(STRIDES)

    @property
    def head(self) -> Detect:
        """The Detect head (layer 23)."""
        return self.model[23]  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Images ``[B, 3, H, W]`` in [0, 1] (H, W multiples of 32) → 3 raw maps
        ``[B, 64 + nc, H/s, W/s]`` for s = 8, 16, 32 (train and eval mode alike)."""
        if x.shape[-2] % 32 or x.shape[-1] % 32:
            raise ValueError(
                f"YOLO11 needs input sides that are multiples of 32, got {tuple(x.shape[-2:])}; "
                "letterbox/pad the images first"
            )
        m = self.model
        x = m[3](m[2](m[1](m[0](x))))  # [B, c256, H/8, W/8]
        p3 = m[4](x)  # [B, c512, H/8, W/8]
        p4 = m[6](m[5](p3))  # [B, c512, H/16, W/16]
        p5 = m[10](m[9](m[8](m[7](p4))))  # [B, c1024, H/32, W/32]
        h4 = m[13](m[12]([m[11](p5), p4]))  # [B, c512, H/16, W/16]
        out3 = m[16](m[15]([m[14](h4), p3]))  # [B, c256, H/8, W/8]
        out4 = m[19](m[18]([m[17](out3), h4]))  # [B, c512, H/16, W/16]
        out5 = m[22](m[21]([m[20](out4), p5]))  # [B, c1024, H/32, W/32]
        return self.head([out3, out4, out5])

    def fuse(self) -> YOLO11:
        """Fold every BatchNorm into its convolution for inference (uses the running statistics).

        Returns ``self``. The state_dict changes (no ``bn`` entries), so save checkpoints unfused.
        """
        for module in self.modules():
            if isinstance(module, Conv):
                module.fuse_()
        return self


def build_model(
    scale: str = "n",
    num_classes: int = 80,
    names: Sequence[str] | None = None,
    verbose: bool = False,
    imgsz: int = 640,
) -> YOLO11:
    """Build a freshly initialised YOLO11 of ``scale`` (n, s, m, l, x) for ``num_classes`` classes.

    With ``verbose`` the parameter/GFLOPs summary at ``imgsz`` is logged at INFO.
    """
    model = YOLO11(scale, num_classes, names)
    if verbose:
        logger.info("YOLO11%s: %s", scale, format_summary(model_summary(model, imgsz=imgsz)))
    return model
