"""DenseNet's dense block (Huang et al., 2017): every layer sees the concatenation of all earlier
feature maps and adds ``growth`` new ones. Layer order follows torchvision (norm1, conv1, norm2, conv2)."""
from __future__ import annotations

import torch
import torch.utils.checkpoint as cp
from torch import nn

from ..errors import BlockError
from .base import MAX_LAYERS, ActKind, Block, NormActConv, NormKind, Shape, positive, spatial_dims
from .ranges import Count, Rate
from .registry import register


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 (bn_size * growth) -> BN-ReLU-3x3 (growth): the DenseNet-B bottleneck layer."""

    def __init__(self, nd: int, in_channels: int, growth: int, bn_size: int, dropout: float, norm: str, act: str,
                 memory_efficient: bool):
        super().__init__()
        self.bottleneck = NormActConv(nd, in_channels, bn_size * growth, 1, norm=norm, act=act)
        self.conv = NormActConv(nd, bn_size * growth, growth, 3, norm=norm, act=act)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.memory_efficient = memory_efficient

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        def bottleneck(*inputs: torch.Tensor) -> torch.Tensor:
            return self.bottleneck(torch.cat(inputs, 1))

        if self.memory_efficient and self.training and any(f.requires_grad for f in features):
            # recompute the concatenation in backward instead of storing it: memory linear in depth
            hidden = cp.checkpoint(bottleneck, *features, use_reentrant=False)
        else:
            hidden = bottleneck(*features)
        return self.drop(self.conv(hidden))


@register("dense")
class Dense(Block):
    """A dense block of ``layers`` layers; output channels = input + layers * growth."""

    def __init__(self, in_shape: Shape, *, layers: Count, growth: Count, bn_size: Count = 4, dropout: Rate = 0.0,
                 norm: NormKind = "batch", act: ActKind = "relu", memory_efficient: bool = False):
        super().__init__()
        positive(layers=layers, growth=growth, bn_size=bn_size)
        if layers > MAX_LAYERS:
            raise BlockError(f"'layers' must be at most {MAX_LAYERS}, got {layers}")
        if not 0.0 <= dropout < 1.0:
            raise BlockError(f"'dropout' must be in [0, 1), got {dropout}")
        nd = spatial_dims(in_shape, "dense")
        self.layers = nn.ModuleList(
            DenseLayer(nd, in_shape[0] + i * growth, growth, bn_size, dropout, norm, act, memory_efficient)
            for i in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, 1)
