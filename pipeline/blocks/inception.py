"""GoogLeNet's Inception module (v1): four parallel branches joined along channels.

Arguments follow the columns of Table 1 in "Going deeper with convolutions":
``b1`` = #1x1, ``b2`` = [#3x3 reduce, #3x3], ``b3`` = [#5x5 reduce, #5x5], ``b4`` = pool proj.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import BlockError
from .base import ActKind, Block, ConvNormAct, NormKind, Shape, positive, spatial_dims
from .ranges import Count
from .registry import register


@register("inception")
class Inception(Block):
    """1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3 max pool -> 1x1, concatenated (branch1..branch4)."""

    def __init__(self, in_shape: Shape, *, b1: Count, b2: tuple[Count, Count], b3: tuple[Count, Count], b4: Count,
                 b3_kernel: int = 5, norm: NormKind = "batch", norm_eps: float = 1e-3, act: ActKind = "relu",
                 pool_ceil: bool = True):
        super().__init__()
        positive(b1=b1, **{f"b2[{i}]": w for i, w in enumerate(b2)}, **{f"b3[{i}]": w for i, w in enumerate(b3)}, b4=b4)
        if b3_kernel % 2 == 0:
            raise BlockError(f"'b3_kernel' must be odd, got {b3_kernel}")
        nd = spatial_dims(in_shape, "inception", (2,))

        def conv(cin: int, cout: int, kernel: int) -> ConvNormAct:
            return ConvNormAct(nd, cin, cout, kernel, norm=norm, act=act, norm_eps=norm_eps)

        cin = in_shape[0]
        self.branch1 = conv(cin, b1, 1)
        self.branch2 = nn.Sequential(conv(cin, b2[0], 1), conv(b2[0], b2[1], 3))
        self.branch3 = nn.Sequential(conv(cin, b3[0], 1), conv(b3[0], b3[1], b3_kernel))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=pool_ceil), conv(cin, b4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)
