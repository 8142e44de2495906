"""Depthwise-separable convolutions: MobileNet v1's unit, the inverted residual of MobileNet v2/v3 and
EfficientNet (MBConv), and EfficientNetV2's fused-MBConv."""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..errors import BlockError
from .base import ActKind, Block, ConvNormAct, NormKind, Shape, make_divisible, per_dim, spatial_dims
from .gating import SqueezeExcitation, check_rate, drop_path, squeeze_width
from .ranges import Count, Rate, SERatio, Size
from .registry import register


@register("dwsep")
class DepthwiseSeparable(Block):
    """3x3 depthwise conv (one filter per channel) -> norm -> act, then 1x1 pointwise -> norm -> act."""

    def __init__(self, in_shape: Shape, *, out: Count, stride: Size = 1, kernel: Size = 3, norm: NormKind = "batch",
                 act: ActKind = "relu", dilation: Size = 1):
        super().__init__()
        if out <= 0:
            raise BlockError(f"'out' must be positive, got {out}", arg="out")
        nd = spatial_dims(in_shape, "dwsep")
        cin = in_shape[0]
        self.depthwise = ConvNormAct(nd, cin, cin, kernel, stride, dilation=dilation, groups=cin, norm=norm, act=act)
        self.pointwise = ConvNormAct(nd, cin, out, 1, norm=norm, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def expanded_width(in_channels: int, expand: float, hidden: int | None, divisor: int) -> int:
    """The hidden width of an (fused) inverted residual: ``hidden``, else in_channels x expand, rounded
    (MobileNetV2) or to a multiple of ``divisor`` (EfficientNet: 8)."""
    if hidden is not None:
        if hidden <= 0:
            raise BlockError(f"'hidden' must be positive, got {hidden}", arg="hidden")
        return hidden
    if expand <= 0 or divisor <= 0:
        raise BlockError(f"'expand' and 'expand_divisor' must be positive, got {expand}, {divisor}", arg="expand")
    return make_divisible(in_channels * expand, divisor) if divisor > 1 else max(1, int(round(in_channels * expand)))


class _MBConv(Block):
    """The residual join of MobileNet-style blocks: x + drop_path(conv(x)) when the shape is kept."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + drop_path(y, self.drop_path, self.training) if self.use_residual else y


@register("inverted")
class InvertedResidual(_MBConv):
    """MobileNet v2/v3 and EfficientNet's MBConv: 1x1 expand -> depthwise -> [squeeze-excitation] -> linear
    1x1 project; residual exactly when the stride is 1 and channels are kept (the linear bottleneck keeps
    information). The expand conv is left out when the hidden width equals the input's.

    Args:
        expand: hidden width as a multiple of the input channels.
        hidden: hidden width in channels (MobileNetV3's table); overrides ``expand``.
        expand_divisor: round in_channels x expand to a multiple of this (EfficientNet: 8; 1 = round).
        se: squeeze-excitation after the depthwise conv, its width as a fraction of ``se_base`` (0 = none).
        se_base: what ``se`` is a fraction of: the block's input channels (EfficientNet) or the hidden
            width (MobileNetV3).
        se_divisor: round the squeeze width to a multiple of this (MobileNetV3: 8).
        se_act: activation inside the squeeze-excitation.
        se_gate: the squeeze-excitation's gate (sigmoid; MobileNetV3: hardsigmoid).
        drop_path: stochastic-depth rate of the residual branch (training only).
    """

    def __init__(self, in_shape: Shape, *, out: Count, stride: Size = 1, expand: float = 6, hidden: Count | None = None,
                 expand_divisor: int = 1, kernel: Size = 3, norm: NormKind = "batch", act: ActKind = "relu6",
                 norm_eps: float = 1e-5, se: SERatio = 0.0, se_base: Literal["in", "hidden"] = "in",
                 se_divisor: int = 1, se_act: ActKind = "relu", se_gate: ActKind = "sigmoid", drop_path: Rate = 0.0):
        super().__init__()
        if out <= 0:
            raise BlockError(f"'out' must be positive, got {out}", arg="out")
        if not 0 <= se <= 64:
            raise BlockError(f"'se' must be between 0 (none) and 64, got {se}", arg="se")
        nd = spatial_dims(in_shape, "inverted")
        cin = in_shape[0]
        width = expanded_width(cin, expand, hidden, expand_divisor)
        layers = [ConvNormAct(nd, cin, width, 1, norm=norm, act=act, norm_eps=norm_eps)] if width != cin else []
        layers.append(ConvNormAct(nd, width, width, kernel, stride, groups=width, norm=norm, act=act,
                                  norm_eps=norm_eps))
        if se:
            squeeze = squeeze_width(cin if se_base == "in" else width, se, se_divisor)
            layers.append(SqueezeExcitation((width, *in_shape[1:]), width=squeeze, act=se_act, gate=se_gate))
        layers.append(ConvNormAct(nd, width, out, 1, norm=norm, act="none", norm_eps=norm_eps))
        self.conv = nn.Sequential(*layers)
        self.use_residual = per_dim(stride, nd, "stride") == (1,) * nd and cin == out
        self.drop_path = check_rate(drop_path, "drop_path")


@register("fused_inverted")
class FusedInvertedResidual(_MBConv):
    """EfficientNetV2's fused-MBConv: one full kxk conv (stride) to the hidden width -> linear 1x1 project,
    or, when the hidden width equals the input's, the kxk conv straight to ``out`` (with its activation).
    Residual exactly when the stride is 1 and channels are kept.

    Args:
        expand: hidden width as a multiple of the input channels.
        hidden: hidden width in channels; overrides ``expand``.
        expand_divisor: round in_channels x expand to a multiple of this (EfficientNetV2: 8; 1 = round).
        drop_path: stochastic-depth rate of the residual branch (training only).
    """

    def __init__(self, in_shape: Shape, *, out: Count, stride: Size = 1, expand: float = 4, hidden: Count | None = None,
                 expand_divisor: int = 1, kernel: Size = 3, norm: NormKind = "batch", act: ActKind = "silu",
                 norm_eps: float = 1e-5, drop_path: Rate = 0.0):
        super().__init__()
        if out <= 0:
            raise BlockError(f"'out' must be positive, got {out}", arg="out")
        nd = spatial_dims(in_shape, "fused_inverted")
        cin = in_shape[0]
        width = expanded_width(cin, expand, hidden, expand_divisor)
        if width != cin:
            layers = [ConvNormAct(nd, cin, width, kernel, stride, norm=norm, act=act, norm_eps=norm_eps),
                      ConvNormAct(nd, width, out, 1, norm=norm, act="none", norm_eps=norm_eps)]
        else:
            layers = [ConvNormAct(nd, cin, out, kernel, stride, norm=norm, act=act, norm_eps=norm_eps)]
        self.conv = nn.Sequential(*layers)
        self.use_residual = per_dim(stride, nd, "stride") == (1,) * nd and cin == out
        self.drop_path = check_rate(drop_path, "drop_path")
