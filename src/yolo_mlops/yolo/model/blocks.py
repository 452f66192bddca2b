"""The building blocks of YOLO11, smallest first.

Attribute names equal the names in Ultralytics checkpoints (``conv``, ``bn``, ``cv1``, ``m`` ...),
so that the model's ``state_dict`` keys match theirs without any renaming. Written from
``docs/design.md`` §1; the full network and the head are in ``model.py``.

Shapes in comments: B batch, C channels, H × W spatial size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.03


class Conv(nn.Module):
    """Conv2d (no bias) → BatchNorm2d → SiLU (or no activation). Padding keeps ``H/s × W/s``."""

    def __init__(
        self, c_in: int, c_out: int, k: int = 1, s: int = 1, *, groups: int = 1, act: bool = True
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, padding=k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.SiLU() if act else nn.Identity()  # in-place would clone under autograd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, c_in, H, W] → [B, c_out, H/s, W/s]``."""
        return self.act(self.bn(self.conv(x)))

    @torch.no_grad()
    def fuse_(self) -> None:
        """Fold the BatchNorm (eval statistics) into the convolution; ``bn`` becomes Identity."""
        if isinstance(self.bn, nn.Identity):
            return
        conv, bn = self.conv, self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # [c_out]
        fused = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            groups=conv.groups,
            bias=True,
        ).to(conv.weight.device, conv.weight.dtype)
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
        fused.requires_grad_(False)
        self.conv, self.bn = fused, nn.Identity()


class DWConv(Conv):
    """Depthwise Conv (``groups = c_in``; YOLO11 only uses it with ``c_in == c_out``)."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1, act: bool = True) -> None:
        super().__init__(c_in, c_out, k, s, groups=_gcd(c_in, c_out), act=act)


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


class _ChannelCat(torch.autograd.Function):
    """``torch.cat(xs, 1)`` of channels-last maps whose backward gives each input a dense gradient.

    The gradient of a channel concatenation is a channel slice of the output's gradient. In
    channels-last memory that slice is strided (``C_i`` values of every ``ΣC_i``), and the
    elementwise backward kernels it reaches (SiLU, BatchNorm, the additions that accumulate a
    tensor's gradients) run far slower on it than on dense memory (design §12). Copying each
    slice into its own channels-last buffer costs one cheap pass and changes no value.
    """

    @staticmethod
    def forward(ctx, *xs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.sizes = [x.shape[1] for x in xs]
        return torch.cat(xs, 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        parts = grad.split(ctx.sizes, 1)
        return tuple(part.contiguous(memory_format=torch.channels_last) for part in parts)


def cat_channels(xs: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """``[[B, C_i, H, W], ...] → [B, ΣC_i, H, W]``: ``torch.cat(xs, 1)``, the same values.

    When autograd records it and every input keeps its channels innermost (channels-last maps
    and their channel slices, ``stride(1) == 1``), the inputs' gradients come back dense and
    channels-last (:class:`_ChannelCat`). Otherwise (NCHW maps, inference) it is ``torch.cat``.
    """
    if (
        torch.is_grad_enabled()
        and any(x.requires_grad for x in xs)
        and all(x.ndim == 4 and x.stride(1) == 1 for x in xs)
    ):
        return _ChannelCat.apply(*xs)
    return torch.cat(xs, 1)


class Concat(nn.Module):
    """Channel concatenation of a list of maps, in the listed order (no parameters)."""

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """``[[B, C_i, H, W], ...] → [B, ΣC_i, H, W]``."""
        return cat_channels(xs)


class Bottleneck(nn.Module):
    """Two 3×3 Convs with a residual connection when shapes allow (hidden = ``int(c_out * e)``)."""

    def __init__(self, c_in: int, c_out: int, shortcut: bool = True, e: float = 0.5) -> None:
        super().__init__()
        hidden = int(c_out * e)
        self.cv1 = Conv(c_in, hidden, 3)
        self.cv2 = Conv(hidden, c_out, 3)
        self.add = shortcut and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, c_in, H, W] → [B, c_out, H, W]``."""
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3k(nn.Module):
    """CSP block with ``n`` full-width bottlenecks: ``cv3(cat[m(cv1(x)), cv2(x)])``."""

    def __init__(self, c_in: int, c_out: int, n: int = 2, e: float = 0.5) -> None:
        super().__init__()
        hidden = int(c_out * e)
        self.cv1 = Conv(c_in, hidden, 1)
        self.cv2 = Conv(c_in, hidden, 1)
        self.cv3 = Conv(2 * hidden, c_out, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, e=1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, c_in, H, W] → [B, c_out, H, W]``."""
        return self.cv3(cat_channels((self.m(self.cv1(x)), self.cv2(x))))


class C3k2(nn.Module):
    """C2f-style block: split ``cv1(x)`` in halves, chain ``n`` blocks on the second, concat all.

    Each block is a ``C3k`` (``c3k=True``) or a half-width ``Bottleneck``.
    """

    def __init__(
        self, c_in: int, c_out: int, n: int = 1, c3k: bool = False, e: float = 0.5
    ) -> None:
        super().__init__()
        self.c = int(c_out * e)
        self.cv1 = Conv(c_in, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c_out, 1)
        self.m = nn.ModuleList(
            C3k(self.c, self.c, 2) if c3k else Bottleneck(self.c, self.c) for _ in range(n)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, c_in, H, W] → [B, c_out, H, W]``."""
        ys = list(self.cv1(x).split(self.c, 1))  # 2 × [B, c, H, W]
        for block in self.m:
            ys.append(block(ys[-1]))
        return self.cv2(cat_channels(ys))  # [B, (2 + n) c, H, W] → [B, c_out, H, W]


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained ``k×k`` max-pools, all 4 stages concatenated."""

    def __init__(self, c_in: int, c_out: int, k: int = 5) -> None:
        super().__init__()
        hidden = c_in // 2
        self.cv1 = Conv(c_in, hidden, 1)
        self.cv2 = Conv(4 * hidden, c_out, 1)
        self.m = nn.MaxPool2d(k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, c_in, H, W] → [B, c_out, H, W]``."""
        ys = [self.cv1(x)]
        for _ in range(3):
            ys.append(self.m(ys[-1]))
        return self.cv2(cat_channels(ys))


class Attention(nn.Module):
    """Multi-head self-attention over all ``H·W`` positions plus a depthwise positional conv.

    The ``qkv`` channels are laid out per head as ``[q (key_dim) | k (key_dim) | v (head_dim)]``.
    """

    def __init__(self, dim: int, num_heads: int = 8, attn_ratio: float = 0.5) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim**-0.5
        qkv_channels = dim + 2 * self.key_dim * num_heads
        self.qkv = Conv(dim, qkv_channels, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 3, groups=dim, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W] → [B, C, H, W]``."""
        b, c, h, w = x.shape
        n = h * w
        qkv = self.qkv(x).view(b, self.num_heads, 2 * self.key_dim + self.head_dim, n)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.head_dim], dim=2)
        # softmax(qᵀk · scale) over keys, applied to v: SDPA wants [B, heads, N, d] operands.
        out = F.scaled_dot_product_attention(
            q.transpose(-2, -1), k.transpose(-2, -1), v.transpose(-2, -1), scale=self.scale
        )  # [B, heads, N, head_dim]
        out = out.transpose(-2, -1).reshape(b, c, h, w) + self.pe(v.reshape(b, c, h, w))
        return self.proj(out)


class PSABlock(nn.Module):
    """Attention then a 2×-wide 1×1 feed-forward, both residual."""

    def __init__(self, c: int, attn_ratio: float = 0.5, num_heads: int = 4) -> None:
        super().__init__()
        self.attn = Attention(c, num_heads=num_heads, attn_ratio=attn_ratio)
        self.ffn = nn.Sequential(Conv(c, 2 * c, 1), Conv(2 * c, c, 1, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, c, H, W] → [B, c, H, W]``."""
        x = x + self.attn(x)
        return x + self.ffn(x)


class C2PSA(nn.Module):
    """Split ``cv1(x)`` in halves, run ``n`` PSABlocks on the second half, concat, ``cv2``."""

    def __init__(self, c_in: int, c_out: int, n: int = 1, e: float = 0.5) -> None:
        super().__init__()
        if c_in != c_out:
            raise ValueError(f"C2PSA needs c_in == c_out, got {c_in} and {c_out}")
        self.c = int(c_in * e)
        self.cv1 = Conv(c_in, 2 * self.c, 1)
        self.cv2 = Conv(2 * self.c, c_in, 1)
        self.m = nn.Sequential(
            *(PSABlock(self.c, attn_ratio=0.5, num_heads=self.c // 64) for _ in range(n))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W] → [B, C, H, W]``."""
        a, b = self.cv1(x).split(self.c, 1)
        return self.cv2(cat_channels((a, self.m(b))))


class DFL(nn.Module):
    """Distribution focal loss integral: expectation over ``reg_max`` bins (fixed weights 0..15)."""

    def __init__(self, reg_max: int = 16) -> None:
        super().__init__()
        self.reg_max = reg_max
        self.conv = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
        with torch.no_grad():
            self.conv.weight.copy_(
                torch.arange(reg_max, dtype=torch.float32).view(1, reg_max, 1, 1)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Box logits ``[B, 4·reg_max, A]`` → distances ``[B, 4, A]`` in grid units (l, t, r, b)."""
        b, _, a = x.shape
        probs = x.view(b, 4, self.reg_max, a).transpose(2, 1).softmax(1)  # [B, reg_max, 4, A]
        return self.conv(probs).view(b, 4, a)
