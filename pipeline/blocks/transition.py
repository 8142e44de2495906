"""DenseNet's transition layer: BN-ReLU-1x1 conv compressing channels by ``theta``, then 2x2 average pooling."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import BlockError
from .base import ActKind, Block, NormActConv, NormKind, Shape, pool_layer, spatial_dims
from .ranges import Compression, Count
from .registry import register


@register("transition")
class Transition(Block):
    """Out channels = floor(theta * in) (DenseNet-C's compression), or ``out`` when given."""

    def __init__(self, in_shape: Shape, *, theta: Compression = 0.5, out: Count | None = None, pool: bool = True,
                 norm: NormKind = "batch", act: ActKind = "relu"):
        super().__init__()
        if not 0.0 < theta <= 1.0:
            raise BlockError(f"'theta' (compression) must be in (0, 1], got {theta}")
        nd = spatial_dims(in_shape, "transition")
        out = out if out is not None else math.floor(theta * in_shape[0])
        if out <= 0:
            raise BlockError(f"transition would output {out} channels")
        self.conv = NormActConv(nd, in_shape[0], out, 1, norm=norm, act=act)
        self.pool = pool_layer("avg", nd)(2, 2) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(x))
