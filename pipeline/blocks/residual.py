"""Residual blocks: basic and bottleneck (He et al., 2015), pre-activation (He et al., 2016) and
wide (Zagoruyko & Komodakis, 2016). Layers are registered in torchvision's order so that its
weights convert positionally (conv1, conv2[, conv3], shortcut)."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BlockError
from .base import (ActKind, Block, ConvNormAct, NormActConv, NormKind, Shape, act_layer, make_conv, norm_layer,
                   positive, spatial_dims)
from .gating import SqueezeExcitation, check_rate, drop_path, squeeze_width
from .ranges import Count, Rate, SERatio
from .registry import register

Shortcut = Literal["auto", "projection", "identity", "pad"]


class PadShortcut(nn.Module):
    """The ResNet paper's option A: subsample by the stride, zero-pad the new channels; no weights."""

    def __init__(self, extra_channels: int, stride: int, nd: int):
        super().__init__()
        self.extra, self.stride, self.nd = extra_channels, stride, nd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[(..., *[slice(None, None, self.stride)] * self.nd)]
        return F.pad(x, (0, 0) * self.nd + (0, self.extra))


def make_shortcut(kind: str, in_shape: Shape, out_channels: int, stride: int, norm: str, pre_activated: bool = False
                  ) -> nn.Module | None:
    """None for identity; a 1x1 projection (with norm unless the branch is pre-activated) or option A."""
    in_channels, nd = in_shape[0], len(in_shape) - 1
    fits = in_channels == out_channels and stride == 1
    if kind == "identity" and not fits:
        raise BlockError(f"shortcut 'identity' needs equal channels and stride 1, got {in_channels} -> "
                         f"{out_channels} with stride {stride}")
    if kind == "pad" and out_channels < in_channels:
        raise BlockError(f"shortcut 'pad' cannot reduce channels ({in_channels} -> {out_channels})")
    if kind == "identity" or (kind == "auto" and fits):
        return None
    if kind == "pad":
        return PadShortcut(out_channels - in_channels, stride, nd)
    return ConvNormAct(nd, in_channels, out_channels, 1, stride, 0, norm="none" if pre_activated else norm,
                       act="none", bias=False)


def _se(ratio: float, out: int, in_shape: Shape) -> nn.Module:
    """SE-ResNet's squeeze-excitation on the branch before the join (timm: width out/16 rounded to 8)."""
    if not ratio:
        return nn.Identity()
    if not 0 < ratio <= 64:
        raise BlockError(f"'se' must be between 0 (none) and 64, got {ratio}", arg="se")
    return SqueezeExcitation((out, *in_shape[1:]), width=squeeze_width(out, ratio, 8))


def _check(out: int, stride: int, dilation: int = 1, dropout: float = 0.0) -> None:
    positive(out=out, stride=stride, dilation=dilation)
    if not 0.0 <= dropout < 1.0:
        raise BlockError(f"'dropout' must be in [0, 1), got {dropout}")


class _Residual(Block):
    """act(branch(x) + shortcut(x)); subclasses build ``self.branch`` layers and ``self.shortcut``."""

    zero_init = False
    drop_path = 0.0  # stochastic-depth rate of the branch

    def last_norm(self) -> nn.Module:
        raise NotImplementedError

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.act(drop_path(self.residual(x), self.drop_path, self.training) + identity)

    def set_zero_init(self, zero_init: bool) -> None:
        """Refused at plan time when the last norm has no scale to zero (``norm: none``)."""
        if zero_init and not isinstance(getattr(self.last_norm(), "weight", None), nn.Parameter):
            raise BlockError("'zero_init' zeroes the last norm's scale, and norm 'none' has none: "
                             "give a norm, or leave zero_init false", arg="zero_init")
        self.zero_init = zero_init

    def init_weights(self) -> None:
        # Zero the last norm's scale, whatever the norm (batch, group, layer, instance), so each block
        # starts as the identity: very deep nets then train like shallow ones at first (Goyal et al.,
        # 2017, "Accurate, Large Minibatch SGD").
        if self.zero_init:
            nn.init.zeros_(self.last_norm().weight)


@register("basic")
class Basic(_Residual):
    """ResNet basic block: 3x3 conv (stride) -> 3x3 conv, plus the shortcut, then the activation."""

    def __init__(self, in_shape: Shape, *, out: Count, stride: Count = 1, shortcut: Shortcut = "auto",
                 norm: NormKind = "batch", act: ActKind = "relu", zero_init: bool = False, dropout: Rate = 0.0,
                 dilation: Count = 1, se: SERatio = 0.0, drop_path: Rate = 0.0):
        super().__init__()
        _check(out, stride, dilation, dropout)
        nd = spatial_dims(in_shape, "basic")
        self.conv1 = ConvNormAct(nd, in_shape[0], out, 3, stride, dilation=dilation, norm=norm, act=act)
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.conv2 = ConvNormAct(nd, out, out, 3, 1, dilation=dilation, norm=norm, act="none")
        self.se = _se(se, out, in_shape)
        self.shortcut = make_shortcut(shortcut, in_shape, out, stride, norm)
        self.act = act_layer(act)
        self.set_zero_init(zero_init)
        self.drop_path = check_rate(drop_path, "drop_path")

    def last_norm(self) -> nn.Module:
        return self.conv2.norm

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(self.conv2(self.drop(self.conv1(x))))


@register("bottleneck")
class Bottleneck(_Residual):
    """ResNet bottleneck: 1x1 reduce -> 3x3 (stride, groups) -> 1x1 expand to ``out`` (v1.5: stride on the 3x3).

    The middle width is ``width`` if given, else ``out / 4 * base_width / 64 * groups`` as in
    torchvision: ``base_width: 128`` is Wide ResNet-50-2, ``groups: 32, base_width: 4`` ResNeXt-50 32x4d.
    """

    def __init__(self, in_shape: Shape, *, out: Count, width: int | None = None, groups: int = 1, base_width: int = 64,
                 stride: Count = 1,
                 shortcut: Shortcut = "auto", norm: NormKind = "batch", act: ActKind = "relu",
                 zero_init: bool = False, dilation: Count = 1, se: SERatio = 0.0, drop_path: Rate = 0.0):
        super().__init__()
        _check(out, stride, dilation)
        nd = spatial_dims(in_shape, "bottleneck")
        width = width or int(out // 4 * (base_width / 64)) * groups
        positive(width=width)
        self.conv1 = ConvNormAct(nd, in_shape[0], width, 1, norm=norm, act=act)
        self.conv2 = ConvNormAct(nd, width, width, 3, stride, dilation=dilation, groups=groups, norm=norm, act=act)
        self.conv3 = ConvNormAct(nd, width, out, 1, norm=norm, act="none")
        self.se = _se(se, out, in_shape)
        self.shortcut = make_shortcut(shortcut, in_shape, out, stride, norm)
        self.act = act_layer(act)
        self.set_zero_init(zero_init)
        self.drop_path = check_rate(drop_path, "drop_path")

    def last_norm(self) -> nn.Module:
        return self.conv3.norm

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(self.conv3(self.conv2(self.conv1(x))))


@register("preact")
class PreAct(Block):
    """Pre-activation unit ("Identity Mappings in Deep Residual Networks"): norm-act-conv twice, and
    nothing after the addition. A projection shortcut reads the pre-activated input, as in the paper."""

    def __init__(self, in_shape: Shape, *, out: Count, stride: Count = 1, bottleneck: bool = False,
                 shortcut: Shortcut = "auto", norm: NormKind = "batch", act: ActKind = "relu", dropout: Rate = 0.0,
                 drop_path: Rate = 0.0):
        super().__init__()
        _check(out, stride, 1, dropout)
        nd = spatial_dims(in_shape, self.block_name)
        in_channels = in_shape[0]
        self.norm = norm_layer(norm, in_channels, nd)
        self.act = act_layer(act, inplace=False)
        if bottleneck:
            width = max(out // 4, 1)
            self.conv1 = make_conv(nd, in_channels, width, 1, 1, padding=None, dilation=1, groups=1, bias=False)
            self.conv2 = NormActConv(nd, width, width, 3, stride, norm=norm, act=act)
            self.conv3 = NormActConv(nd, width, out, 1, norm=norm, act=act)
        else:
            self.conv1 = make_conv(nd, in_channels, out, 3, stride, padding=None, dilation=1, groups=1, bias=False)
            self.conv2 = NormActConv(nd, out, out, 3, norm=norm, act=act)
            self.conv3 = nn.Identity()
        self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
        self.shortcut = make_shortcut(shortcut, in_shape, out, stride, norm, pre_activated=True)
        self.drop_path = check_rate(drop_path, "drop_path")

    def branch(self, pre: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.conv2(self.drop(self.conv1(pre))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.act(self.norm(x))
        identity = x if self.shortcut is None else self.shortcut(pre)
        return drop_path(self.branch(pre), self.drop_path, self.training) + identity


@register("wide")
class Wide(PreAct):
    """Wide-ResNet block: BN-ReLU-3x3 (stride) -> BN-ReLU-dropout-3x3, plus a 1x1 projection when
    shapes change (applied to the pre-activated input, as in the authors' code). A basic pre-activation
    unit with the dropout moved to the paper's place."""

    def __init__(self, in_shape: Shape, *, out: Count, stride: Count = 1, dropout: Rate = 0.0, norm: NormKind = "batch",
                 act: ActKind = "relu", drop_path: Rate = 0.0):
        super().__init__(in_shape, out=out, stride=stride, norm=norm, act=act, dropout=dropout, drop_path=drop_path)
        # the paper's place for the dropout: inside conv2, between the second ReLU and conv, so the second
        # BN normalises the same activations in training and evaluation
        self.conv2.drop, self.drop = self.drop, nn.Identity()
