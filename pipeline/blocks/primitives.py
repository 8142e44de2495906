"""Primitive blocks: conv, norm, activation, pools, LRN, dropout, flatten, linear, merges."""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..errors import BlockError
from .base import (ActKind, Block, ConvNormAct, NormKind, Shape, act_layer, format_shape, norm_layer, per_dim,
                   pool_layer, positive, spatial_dims)
from .ranges import Count, Padding, PositiveFloat, Rate, Size
from .registry import register


@register("conv")
class Conv(ConvNormAct):
    """Convolution followed by an optional norm and activation (1-D, 2-D or 3-D by input)."""

    def __init__(self, in_shape: Shape, *, out: Count, kernel: Size = 3, stride: Size = 1,
                 padding: Padding | None = None, dilation: Size = 1, groups: Count = 1, norm: NormKind = "batch",
                 act: ActKind = "relu", bias: bool | None = None, norm_eps: float = 1e-5):
        positive(out=out, groups=groups)
        nd = spatial_dims(in_shape, "conv")
        super().__init__(nd, in_shape[0], out, kernel, stride, padding, dilation, groups, norm, act, bias, norm_eps)


@register("norm")
class Norm(Block):
    """Normalisation: batch, layer (each sample over all of C, H, W), layer2d (over the channels at each
    position, as ConvNeXt), instance or group."""

    def __init__(self, in_shape: Shape, *, kind: NormKind = "batch", eps: PositiveFloat = 1e-5, groups: Count = 32):
        super().__init__()
        positive(eps=eps, groups=groups)
        self.norm = norm_layer(kind, in_shape[0], len(in_shape) - 1, eps, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


@register("act")
class Act(Block):
    """An activation function by name."""

    def __init__(self, in_shape: Shape, *, kind: ActKind = "relu"):
        super().__init__()
        # not in place: this node's input may also feed another node
        self.act = act_layer(kind, inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x)


class _Pool(Block):
    kind: str

    def __init__(self, in_shape: Shape, *, kernel: Size, stride: Size | None = None, padding: Padding = 0,
                 ceil: bool = False, **extra):
        super().__init__()
        nd = spatial_dims(in_shape, f"{self.kind}pool")
        kernel = per_dim(kernel, nd, "kernel")
        stride = kernel if stride is None else per_dim(stride, nd, "stride")
        padding = per_dim(padding, nd, "padding", 0)
        if any(p > k // 2 for p, k in zip(padding, kernel)):
            half = [k // 2 for k in kernel]
            raise BlockError(f"'padding' must be between 0 and kernel/2 = {half[0] if len(set(half)) == 1 else half}, "
                             f"got {padding[0] if len(set(padding)) == 1 else list(padding)}", arg="padding")
        self.pool = pool_layer(self.kind, nd)(kernel, stride, padding, ceil_mode=ceil, **extra)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


@register("maxpool")
class MaxPool(_Pool):
    """Max pooling; ``stride`` defaults to ``kernel``; ``ceil`` rounds the output size up."""

    kind = "max"

    def __init__(self, in_shape: Shape, *, kernel: Size, stride: Size | None = None, padding: Padding = 0,
                 ceil: bool = False):
        super().__init__(in_shape, kernel=kernel, stride=stride, padding=padding, ceil=ceil)


@register("avgpool")
class AvgPool(_Pool):
    """Average pooling; ``stride`` defaults to ``kernel``; ``ceil`` rounds the output size up."""

    kind = "avg"

    def __init__(self, in_shape: Shape, *, kernel: Size, stride: Size | None = None, padding: Padding = 0,
                 ceil: bool = False, count_include_pad: bool = True):
        super().__init__(in_shape, kernel=kernel, stride=stride, padding=padding, ceil=ceil,
                         count_include_pad=count_include_pad)


@register("adaptive_pool")
class AdaptivePool(Block):
    """Pool to a fixed output size whatever the input size (torchvision's AlexNet/VGG use 6x6/7x7)."""

    def __init__(self, in_shape: Shape, *, size: Size, kind: Literal["avg", "max"] = "avg"):
        super().__init__()
        nd = spatial_dims(in_shape, "adaptive_pool")
        size = per_dim(size, nd, "size")
        layers = {"avg": (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d),
                  "max": (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)}
        self.pool = layers[kind][nd - 1](size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


@register("global_pool")
class GlobalPool(Block):
    """Pool every spatial position into one value per channel; flattens to (C,) unless told not to."""

    def __init__(self, in_shape: Shape, *, kind: Literal["avg", "max"] = "avg", flatten: bool = True):
        super().__init__()
        spatial_dims(in_shape, "global_pool")
        self.kind, self.flatten = kind, flatten
        self.dims = tuple(range(2, len(in_shape) + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(self.dims, keepdim=True) if self.kind == "avg" else x.amax(self.dims, keepdim=True)
        return y.flatten(1) if self.flatten else y


@register("lrn")
class LRN(Block):
    """Local response normalisation across channels (AlexNet, the original GoogLeNet)."""

    def __init__(self, in_shape: Shape, *, size: Count = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        super().__init__()
        positive(size=size)
        spatial_dims(in_shape, "lrn")
        self.lrn = nn.LocalResponseNorm(size, alpha, beta, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lrn(x)


@register("dropout")
class Dropout(Block):
    """Dropout with probability ``p`` (element-wise)."""

    def __init__(self, in_shape: Shape, *, p: Rate = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise BlockError(f"'p' must be in [0, 1), got {p}")
        self.drop = nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(x)


@register("flatten")
class Flatten(Block):
    """(C, H, W) -> (C*H*W,)."""

    def __init__(self, in_shape: Shape):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


@register("linear")
class Linear(Block):
    """Fully connected layer on a flat input, with an optional activation."""

    def __init__(self, in_shape: Shape, *, out: Count, bias: bool = True, act: ActKind = "none"):
        super().__init__()
        positive(out=out)
        if len(in_shape) != 1:
            raise BlockError(f"linear needs a flat input (C,), got {format_shape(in_shape)}; "
                             "add a 'flatten' or 'global_pool' node before it")
        self.fc = nn.Linear(in_shape[0], out, bias=bias)
        self.act = act_layer(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(x))


@register("identity")
class Identity(Block):
    """Passes its input through (a named tap point, or a placeholder)."""

    def __init__(self, in_shape: Shape):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@register("concat")
class Concat(Block):
    """Concatenate inputs along channels; their other dimensions must agree."""

    merges = True

    def __init__(self, in_shape: list[Shape]):
        super().__init__()
        first = in_shape[0]
        for shape in in_shape[1:]:
            if len(shape) != len(first) or shape[1:] != first[1:]:
                raise BlockError("block 'concat' needs inputs of equal spatial size, got "
                                 + " and ".join(format_shape(s) for s in in_shape))

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, 1)


@register("add")
class Add(Block):
    """Element-wise sum of inputs of identical shape (a residual join)."""

    merges = True

    def __init__(self, in_shape: list[Shape]):
        super().__init__()
        first = in_shape[0]
        if any(s[0] != first[0] for s in in_shape):
            raise BlockError("block 'add' needs equal channels, got " + " and ".join(str(s[0]) for s in in_shape))
        if any(s != first for s in in_shape):
            raise BlockError("block 'add' needs equal shapes, got " + " and ".join(format_shape(s) for s in in_shape))

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out
