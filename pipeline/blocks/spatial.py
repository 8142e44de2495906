"""Spatial resizing without pooling: explicit (one-sided, causal) padding, crops, upsampling and
transposed convolution (decoders, FCN/U-Net heads, WaveNet-style causal 1-D convs)."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BlockError
from .base import ActKind, Block, NormKind, Shape, act_layer, norm_layer, per_dim, spatial_dims
from .ranges import Count, Padding, Size
from .registry import register

SIDES = ("left", "right", "top", "bottom", "front", "back")  # F.pad's order: last dimension first


def _sides(nd: int, who: str, **amounts: int) -> tuple[int, ...]:
    """The amounts in F.pad order; a side the input does not have (``top`` of a 1-D signal) is an error."""
    usable = SIDES[:2 * nd]
    for name, value in amounts.items():
        if value and name not in usable:
            raise BlockError(f"{who}: a {nd}-D input has no '{name}' side (sides: {', '.join(usable)})", arg=name)
        if value < 0:
            raise BlockError(f"{who}: '{name}' must be >= 0, got {value}", arg=name)
    return tuple(amounts[s] for s in usable)


@register("pad")
class Pad(Block):
    """Pad each side by its own amount. A causal 1-D conv is ``{block: pad, left: (kernel - 1) * dilation}``
    followed by a conv with ``padding: 0``: output t then never sees input after t.

    Args:
        left: columns (1-D: samples) added before the first.
        right: columns added after the last.
        top: rows added above (2-D and 3-D inputs).
        bottom: rows added below (2-D and 3-D inputs).
        front: slices added before the first depth slice (3-D inputs).
        back: slices added after the last depth slice (3-D inputs).
        mode: the values added: a constant, or the input reflected, replicated or wrapped around.
        value: the constant of ``mode: constant``.
    """

    def __init__(self, in_shape: Shape, *, left: int = 0, right: int = 0, top: int = 0, bottom: int = 0,
                 front: int = 0, back: int = 0, mode: Literal["constant", "reflect", "replicate", "circular"] = "constant",
                 value: float = 0.0):
        super().__init__()
        nd = spatial_dims(in_shape, "pad")
        self.pad = _sides(nd, "pad", left=left, right=right, top=top, bottom=bottom, front=front, back=back)
        self.mode, self.value = mode, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "constant":
            return F.pad(x, self.pad, value=self.value)
        return F.pad(x, self.pad, mode=self.mode)


@register("crop")
class Crop(Block):
    """Remove ``left``/``right``/``top``/``bottom`` (and ``front``/``back`` in 3-D) rows or columns.

    Args:
        left: columns (1-D: samples) removed at the start.
        right: columns removed at the end.
        top: rows removed at the top (2-D and 3-D inputs).
        bottom: rows removed at the bottom (2-D and 3-D inputs).
        front: depth slices removed at the start (3-D inputs).
        back: depth slices removed at the end (3-D inputs).
    """

    def __init__(self, in_shape: Shape, *, left: int = 0, right: int = 0, top: int = 0, bottom: int = 0,
                 front: int = 0, back: int = 0):
        super().__init__()
        nd = spatial_dims(in_shape, "crop")
        amounts = _sides(nd, "crop", left=left, right=right, top=top, bottom=bottom, front=front, back=back)
        self.index: list[slice] = []
        for dim in range(nd):  # F.pad order is last dimension first
            start, end = amounts[2 * dim], amounts[2 * dim + 1]
            size = in_shape[len(in_shape) - 1 - dim]
            if start + end >= size:
                names = SIDES[2 * dim:2 * dim + 2]
                raise BlockError(f"crop removes {start} + {end} of {size} (sides {names[0]}, {names[1]}): "
                                 "nothing would be left", arg=names[0] if start else names[1])
            self.index.insert(0, slice(start, size - end))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[(slice(None), slice(None), *self.index)]


@register("upsample")
class Upsample(Block):
    """Resize by ``scale`` (output = floor(input x scale)) or to ``size``, with nearest or (bi/tri)linear
    interpolation.

    Args:
        scale: factor per spatial dimension (one number or a list such as [2, 1]).
        size: output size (one integer or a list such as [h, w]); instead of ``scale``.
        mode: nearest, linear (linear in every spatial dimension: bilinear in 2-D), bilinear (the same) or
            bicubic (2-D).
        align_corners: for the (bi)linear and bicubic modes, PyTorch's align_corners.
    """

    def __init__(self, in_shape: Shape, *, scale: float | list[float] | None = None, size: Size | None = None,
                 mode: Literal["nearest", "linear", "bilinear", "bicubic"] = "nearest", align_corners: bool = False):
        super().__init__()
        nd = spatial_dims(in_shape, "upsample")
        if (scale is None) == (size is None):
            raise BlockError("upsample needs exactly one of 'scale' and 'size'", arg="size" if size is not None else None)
        if scale is not None:
            scales = (float(scale),) * nd if isinstance(scale, (int, float)) else tuple(float(s) for s in scale)
            if len(scales) != nd or any(s <= 0 for s in scales):
                raise BlockError(f"'scale' must be a positive number or a list of {nd} for a {nd}-D input, got "
                                 f"{scale}", arg="scale")
            self.kwargs = {"scale_factor": scales}
        else:
            self.kwargs = {"size": per_dim(size, nd, "size")}
        if mode == "bicubic" and nd != 2:
            raise BlockError(f"'bicubic' needs a 2-D input, got {nd}-D", arg="mode")
        if mode in ("linear", "bilinear"):
            mode = ("linear", "bilinear", "trilinear")[nd - 1]
        self.mode = mode
        self.align_corners = align_corners if mode != "nearest" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, mode=self.mode, align_corners=self.align_corners, **self.kwargs)


@register("conv_transpose")
class ConvTranspose(Block):
    """Transposed convolution (a learnt upsampling), then an optional norm and activation (keys conv, norm,
    act). Output size: (in - 1) x stride - 2 x padding + dilation x (kernel - 1) + output_padding + 1.

    Args:
        stride: upsampling factor (2 doubles the size); null = the kernel (taps that do not overlap).
        padding: rows/columns cut from each side of the output (there is no size-keeping default).
        output_padding: extra rows/columns on one side of the output (to reach an odd size).
    """

    def __init__(self, in_shape: Shape, *, out: Count, kernel: Size = 2, stride: Size | None = None,
                 padding: Padding = 0, output_padding: Padding = 0, dilation: Size = 1, groups: Count = 1,
                 norm: NormKind = "batch", act: ActKind = "relu", bias: bool | None = None, norm_eps: float = 1e-5):
        super().__init__()
        nd = spatial_dims(in_shape, "conv_transpose")
        if out <= 0 or groups <= 0:
            raise BlockError(f"'out' and 'groups' must be positive, got {out}, {groups}")
        if in_shape[0] % groups or out % groups:
            raise BlockError(f"groups={groups} must divide both input ({in_shape[0]}) and output ({out}) channels",
                             arg="groups")
        kernel = per_dim(kernel, nd, "kernel")
        stride = kernel if stride is None else per_dim(stride, nd, "stride")
        padding, dilation = per_dim(padding, nd, "padding", 0), per_dim(dilation, nd, "dilation")
        output_padding = per_dim(output_padding, nd, "output_padding", 0)
        if any(o >= max(s, d) for o, s, d in zip(output_padding, stride, dilation)):
            raise BlockError(f"'output_padding' must be smaller than the stride or the dilation, got "
                             f"{list(output_padding)}", arg="output_padding")
        layer = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)[nd - 1]
        self.conv = layer(in_shape[0], out, kernel, stride, padding, output_padding, groups,
                          bias=norm == "none" if bias is None else bias, dilation=dilation)
        self.norm = norm_layer(norm, out, nd, norm_eps)
        self.act = act_layer(act)
        self.out_channels = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))
