"""Gating and residual-branch devices: broadcast multiply, squeeze-and-excitation (Hu et al., 2018),
stochastic depth (Huang et al., 2016) and layer scale (Touvron et al., 2021; ConvNeXt)."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import BlockError
from .base import ActKind, Block, Shape, act_layer, conv_layer, format_shape, make_divisible, spatial_dims
from .ranges import Count, Rate
from .registry import register


def squeeze_width(channels: int, ratio: float, divisor: int = 1) -> int:
    """Squeeze channels ``channels * ratio`` rounded down, then to a multiple of ``divisor`` when it is
    above 1 (never more than 10% down): torchvision's EfficientNet (``max(1, c // 4)``) and MobileNetV3
    (``make_divisible(c // 4, 8)``), timm's SE-ResNet (``make_divisible(c / 16, 8)``)."""
    width = max(1, int(channels * ratio))
    return make_divisible(width, divisor) if divisor > 1 else width


@register("mul")
class Mul(Block):
    """Element-wise product of inputs that broadcast: each size equal or 1, sizes aligned from the channels
    (a flat ``(C,)`` input counts as ``(C, 1, 1)``), e.g. a feature map times a per-channel gate."""

    merges = True

    def __init__(self, in_shape: list[Shape]):
        super().__init__()
        rank = max(len(s) for s in in_shape)
        self.ranks = [len(s) for s in in_shape]
        self.rank = rank
        full = [tuple(s) + (1,) * (rank - len(s)) for s in in_shape]
        out = []
        for sizes in zip(*full):
            big = {d for d in sizes if d != 1}
            if len(big) > 1:
                raise BlockError("block 'mul' needs inputs that broadcast (each size equal or 1), got "
                                 + " and ".join(format_shape(s) for s in in_shape))
            out.append(big.pop() if big else 1)
        self.shape = tuple(out)

    def out_shape(self, in_shape: list[Shape]) -> Shape:
        return self.shape

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        out = None
        for x, rank in zip(xs, self.ranks):
            if rank < self.rank:  # (N, C) -> (N, C, 1, 1): torch broadcasts from the right, we from the channels
                x = x.reshape(*x.shape, *([1] * (self.rank - rank)))
            out = x if out is None else out * x
        return out


@register("se")
class SqueezeExcitation(Block):
    """Squeeze-and-excitation: global average pool, 1x1 conv to the squeeze width, ``act``, 1x1 conv
    back, ``gate``, times the input (keys fc1, fc2 as in torchvision and timm).

    Args:
        ratio: squeeze width as a fraction of the input channels (rounded down, at least 1).
        width: squeeze width in channels; overrides ``ratio``.
        divisor: round the width from ``ratio`` to a multiple of this (MobileNetV3: 8; 1 = no rounding).
        act: activation between the two 1x1 convs.
        gate: activation that makes the per-channel scale (sigmoid, or hardsigmoid in MobileNetV3).
    """

    def __init__(self, in_shape: Shape, *, ratio: float = 0.25, width: Count | None = None, divisor: Count = 1,
                 act: ActKind = "relu", gate: ActKind = "sigmoid"):
        super().__init__()
        nd = spatial_dims(in_shape, "se")
        channels = in_shape[0]
        if width is None and not 0 < ratio <= 64:
            raise BlockError(f"'ratio' must be in (0, 64], got {ratio}", arg="ratio")
        if width is not None and width <= 0:
            raise BlockError(f"'width' must be positive, got {width}", arg="width")
        if divisor <= 0:
            raise BlockError(f"'divisor' must be positive, got {divisor}", arg="divisor")
        width = width or squeeze_width(channels, ratio, divisor)
        self.dims = tuple(range(2, nd + 2))
        self.fc1 = conv_layer(nd)(channels, width, 1)
        self.act = act_layer(act)
        self.fc2 = conv_layer(nd)(width, channels, 1)
        self.gate = act_layer(gate)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean(self.dims, keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(scale))))


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zero whole samples with probability ``p`` and scale the rest by 1 / (1 - p) (torchvision's 'row' mode)."""
    if not training or p == 0.0:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - p)
    return x * keep.div_(1.0 - p)


def check_rate(p: float, name: str = "p") -> float:
    if not 0.0 <= p < 1.0:
        raise BlockError(f"'{name}' must be in [0, 1), got {p}", arg=name)
    return p


@register("drop_path")
class DropPath(Block):
    """Stochastic depth on a residual branch: in training, each sample's branch output is zeroed with
    probability ``p`` (and the others scaled by 1 / (1 - p)); identity in eval mode. Place it on the
    branch, before the ``add``; a depth-linear rate is an expression, e.g. ``p: "0.2 * (offset + i) / n"``.

    Args:
        p: probability of dropping a sample's branch.
    """

    def __init__(self, in_shape: Shape, *, p: Rate = 0.1):
        super().__init__()
        self.p = check_rate(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)


@register("layer_scale")
class LayerScale(Block):
    """Learnable per-channel scale of a residual branch, starting at ``init`` (ConvNeXt: 1e-6); the
    weight is ``scale`` with shape (C, 1, 1) for maps, as torchvision's ``layer_scale``.

    Args:
        init: initial value of every channel's scale.
    """

    def __init__(self, in_shape: Shape, *, init: float = 1e-6):
        super().__init__()
        self.init = init
        self.scale = nn.Parameter(torch.full((in_shape[0],) + (1,) * (len(in_shape) - 1), float(init)))

    def init_weights(self) -> None:  # the model-wide init schemes do not know this weight
        with torch.no_grad():
            self.scale.fill_(self.init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale
