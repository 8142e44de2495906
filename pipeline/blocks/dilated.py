"""Dilated convolutions: DRN's dilated residual block (Yu, Koltun & Funkhouser, 2017) and a
WaveNet-style gated stack of dilated causal convolutions for 1-D signals (van den Oord et al., 2016).
A plain dilated conv is the ``conv`` block's ``dilation`` argument."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BlockError
from .base import MAX_LAYERS, ActKind, Block, ConvNormAct, NormKind, Shape, act_layer, positive, spatial_dims
from .ranges import Count
from .registry import register
from .residual import make_shortcut


@register("dilated_residual")
class DilatedResidual(Block):
    """Basic residual block whose 3x3 convs are dilated (padding = dilation keeps the size).
    ``residual: false`` drops the shortcut (DRN-C's last, degridding layers)."""

    def __init__(self, in_shape: Shape, *, out: Count, stride: Count = 1, dilation: Count = 1,
                 dilation2: Count | None = None, residual: bool = True, norm: NormKind = "batch",
                 act: ActKind = "relu"):
        super().__init__()
        positive(out=out, stride=stride, dilation=dilation, dilation2=dilation2)
        nd = spatial_dims(in_shape, "dilated_residual")
        self.conv1 = ConvNormAct(nd, in_shape[0], out, 3, stride, dilation=dilation, norm=norm, act=act)
        self.conv2 = ConvNormAct(nd, out, out, 3, 1, dilation=dilation2 or dilation, norm=norm, act="none")
        self.residual = residual
        self.shortcut = make_shortcut("auto", in_shape, out, stride, norm) if residual else None
        self.act = act_layer(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        if self.residual:
            y = y + (x if self.shortcut is None else self.shortcut(x))
        return self.act(y)


class GatedLayer(nn.Module):
    """tanh(filter) * sigmoid(gate) of a causal dilated conv; 1x1 convs to the residual and skip paths."""

    def __init__(self, channels: int, skip: int, kernel: int, dilation: int, last: bool = False):
        super().__init__()
        self.left_pad = (kernel - 1) * dilation  # pad the past only: output t never sees input > t
        self.conv = nn.Conv1d(channels, 2 * channels, kernel, dilation=dilation)
        # the last layer's residual output would feed nothing, so it has no residual conv
        self.residual = None if last else nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, skip, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        filt, gate = self.conv(F.pad(x, (self.left_pad, 0))).chunk(2, 1)
        h = torch.tanh(filt) * torch.sigmoid(gate)
        return (x if self.residual is None else x + self.residual(h)), self.skip(h)


MAX_DILATION = 2**24  # left padding of a WaveNet layer; far beyond any sequence it could read


@register("wavenet")
class WaveNet(Block):
    """``stacks`` x ``layers`` gated causal layers with dilations 1, b, b^2, ... per stack;
    output = act_out(sum of the skip outputs), shape (skip, L)."""

    def __init__(self, in_shape: Shape, *, layers: Count, stacks: Count = 1, channels: Count | None = None,
                 skip: Count | None = None, kernel: Count = 2, dilation_base: Count = 2, act_out: ActKind = "relu"):
        super().__init__()
        spatial_dims(in_shape, "wavenet", (1,))
        positive(layers=layers, stacks=stacks, kernel=kernel, dilation_base=dilation_base, channels=channels, skip=skip)
        if layers * stacks > MAX_LAYERS:
            raise BlockError(f"'layers' x 'stacks' must be at most {MAX_LAYERS}, got {layers} x {stacks}")
        if max(kernel - 1, 1) * dilation_base ** (layers - 1) > MAX_DILATION:
            raise BlockError(f"the last layer's dilation {dilation_base}^{layers - 1} (times kernel - 1 = "
                             f"{kernel - 1}) is too large: at most {MAX_DILATION}")
        channels = channels or in_shape[0]
        skip = skip or channels
        self.input = nn.Conv1d(in_shape[0], channels, 1) if channels != in_shape[0] else nn.Identity()
        dilations = [dilation_base ** i for _ in range(stacks) for i in range(layers)]
        self.layers = nn.ModuleList(GatedLayer(channels, skip, kernel, d, last=j == len(dilations) - 1)
                                    for j, d in enumerate(dilations))
        self.act = act_layer(act_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input(x)
        total = None
        for layer in self.layers:
            x, s = layer(x)
            total = s if total is None else total + s
        return self.act(total)
