"""Depthwise-separable convolutions: MobileNet v1's unit and MobileNet v2's inverted residual."""
from __future__ import annotations

import torch
from torch import nn

from .base import ActKind, Block, ConvNormAct, NormKind, Shape, positive, spatial_dims
from .registry import register


@register("dwsep")
class DepthwiseSeparable(Block):
    """3x3 depthwise conv (one filter per channel) -> norm -> act, then 1x1 pointwise -> norm -> act."""

    def __init__(self, in_shape: Shape, *, out: int, stride: int = 1, kernel: int = 3, norm: NormKind = "batch",
                 act: ActKind = "relu", dilation: int = 1):
        super().__init__()
        positive(out=out, stride=stride, kernel=kernel, dilation=dilation)
        nd = spatial_dims(in_shape, "dwsep")
        cin = in_shape[0]
        self.depthwise = ConvNormAct(nd, cin, cin, kernel, stride, dilation=dilation, groups=cin, norm=norm, act=act)
        self.pointwise = ConvNormAct(nd, cin, out, 1, norm=norm, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


@register("inverted")
class InvertedResidual(Block):
    """MobileNet v2: 1x1 expand (x ``expand``) -> depthwise -> linear 1x1 project; residual exactly
    when the stride is 1 and channels are kept (the linear bottleneck keeps information)."""

    def __init__(self, in_shape: Shape, *, out: int, stride: int = 1, expand: int = 6, kernel: int = 3,
                 norm: NormKind = "batch", act: ActKind = "relu6"):
        super().__init__()
        positive(out=out, stride=stride, expand=expand, kernel=kernel)
        nd = spatial_dims(in_shape, "inverted")
        cin = in_shape[0]
        hidden = cin * expand
        layers = [ConvNormAct(nd, cin, hidden, 1, norm=norm, act=act)] if expand != 1 else []
        layers += [ConvNormAct(nd, hidden, hidden, kernel, stride, groups=hidden, norm=norm, act=act),
                   ConvNormAct(nd, hidden, out, 1, norm=norm, act="none")]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.use_residual else y
