"""What every block is, and the layer factories that blocks share.

A block is an ``nn.Module`` whose constructor takes the input shape first and then keyword
arguments with type hints; the type hints *are* the YAML schema (names, types, defaults), so a
block needs no separate declaration. Shapes exclude the batch: ``(C,)``, ``(C, L)`` or
``(C, H, W)``; the number of spatial dimensions picks Conv1d/Conv2d, BatchNorm1d/2d and so on.

Blocks that merge several inputs (``concat``, ``add``) set ``merges = True``: their constructor
gets the list of input shapes and ``forward`` gets the list of tensors.
"""
from __future__ import annotations

from typing import Callable, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BlockError

Shape = tuple[int, ...]
Size = int | list[int]  # one size for every spatial dimension, or one per dimension ([h, w] in 2-D)
MAX_LAYERS = 1000  # layers one block builds from a count argument (DenseNet-264's largest block has 64)

class Block(nn.Module):
    """Base of all blocks. Subclasses implement ``__init__(in_shape, *, args...)`` and ``forward``."""

    merges: ClassVar[bool] = False
    block_name: ClassVar[str] = "block"  # the name it is registered under (registry.register sets it)

    def out_shape(self, in_shape: Shape | list[Shape]) -> Shape:
        """The output shape for ``in_shape``; blocks may override this with arithmetic.

        The default runs the block on a weightless 'meta' tensor (the builder constructs every
        block on the meta device first), so it is exact and allocates nothing.
        """
        def probe(shape: Shape) -> torch.Tensor:
            return torch.empty((2, *shape), device="meta")  # batch 2: batch norm refuses batch 1

        x = [probe(s) for s in in_shape] if self.merges else probe(in_shape)
        # in evaluation mode: shapes are the same in both modes, and batch norm's training statistics
        # go through torch's Python decompositions on 'meta' (2/3 of a DenseNet's planning time)
        training = self.training
        try:
            with torch.no_grad():
                y = self.eval()(x)
        finally:
            self.train(training)
        return tuple(y.shape[1:])

    def receptive_field(self, in_shape: Shape | list[Shape]):
        """This block's own receptive field and effective stride (a ``receptive.Field``; a list of
        one per input for merging blocks), for an input whose positions each see one position.

        The default traces ``forward`` on meta tensors; blocks may override this with arithmetic.
        """
        from .receptive import trace_field

        return trace_field(self, in_shape, self.merges)

    def init_weights(self) -> None:
        """Block-specific initialisation applied after the model-wide scheme (e.g. zero-init)."""


def spatial_dims(in_shape: Shape, who: str, allowed: tuple[int, ...] = (1, 2, 3)) -> int:
    """Number of spatial dimensions of ``in_shape``, with a clear error for a flat input."""
    nd = len(in_shape) - 1
    if nd not in allowed:
        if nd == 0:
            raise BlockError(f"{who} needs a spatial input (C,H,W) or (C,L), got a flat input {format_shape(in_shape)}")
        raise BlockError(f"{who} supports {' or '.join(f'{d}-D' for d in allowed)} inputs, got {format_shape(in_shape)}")
    return nd


def positive(**values: float | None) -> None:
    """The one check of a block's sizes: each named value (None = not given) must be above zero."""
    for name, value in values.items():
        items = value if isinstance(value, (list, tuple)) else [value]  # [h, w] forms check each side
        if any(v is not None and v <= 0 for v in items):
            raise BlockError(f"'{name}' must be positive, got {value}", arg=name)


def per_dim(value: int | list[int] | tuple[int, ...], nd: int, name: str, minimum: int = 1) -> tuple[int, ...]:
    """``value`` as one integer per spatial dimension; a list must have exactly ``nd`` items."""
    values = (value,) * nd if isinstance(value, int) else tuple(value)
    if len(values) != nd:
        form = "[h, w]" if nd == 2 else "[d, h, w]" if nd == 3 else "[length]"
        raise BlockError(f"'{name}' must be an integer or a list of {nd} integer{'s' if nd > 1 else ''} "
                         f"{form} for a {nd}-D input, got {list(values)}", arg=name)
    if any(v < minimum for v in values):
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise BlockError(f"'{name}' must be {bound}, got {value if isinstance(value, int) else list(values)}",
                         arg=name)
    return values


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor``, never more than 10% down (MobileNet's rule)."""
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor <= 0:
        zero = " (division by zero)" if divisor == 0 else ""
        raise ValueError(f"the divisor must be a positive integer, got {divisor}{zero}")
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def same_padding(kernel: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[int, ...]:
    """Padding that keeps the size at stride 1 (odd kernels), as torchvision's Conv2dNormActivation."""
    return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))


def format_shape(shape: Shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def conv_layer(nd: int) -> type[nn.Module]:
    return {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[nd]


def channels_to_last(x: torch.Tensor) -> torch.Tensor:
    """(N, C, *spatial) viewed as (N, *spatial, C). Written with positive dims: ONNX's exporter
    writes ``movedim(1, -1)``'s negative one into the Transpose, which onnxruntime rejects."""
    return x.permute(0, *range(2, x.ndim), 1)


def channels_to_front(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`channels_to_last`."""
    return x.permute(0, x.ndim - 1, *range(1, x.ndim - 1))


def make_conv(nd: int, cin: int, cout: int, kernel: Size, stride: Size, padding: Size | None, dilation: Size,
              groups: int, bias: bool) -> nn.Module:
    """An N-d convolution from a block's arguments (checked; ``padding`` None = 'same'-style)."""
    if cin % groups or cout % groups:
        raise BlockError(f"groups={groups} must divide both input ({cin}) and output ({cout}) channels", arg="groups")
    kernel, stride, dilation = (per_dim(v, nd, n) for v, n in ((kernel, "kernel"), (stride, "stride"),
                                                                (dilation, "dilation")))
    padding = same_padding(kernel, dilation) if padding is None else per_dim(padding, nd, "padding", 0)
    return conv_layer(nd)(cin, cout, kernel, stride, padding, dilation, groups, bias=bias)


def pool_layer(kind: str, nd: int) -> type[nn.Module]:
    table = {"max": (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d), "avg": (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)}
    return table[kind][nd - 1]


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel dimension of a (N, C, *spatial) tensor (as in ConvNeXt)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channels_to_front(super().forward(channels_to_last(x)))


class SampleLayerNorm(nn.Module):
    """Layer normalisation as Ba et al. (2016) define it: each sample normalised over all its values
    (C, *spatial), then a per-channel scale and shift (GroupNorm with one group computes the same)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (x.ndim - 2)  # per-channel affine over any number of spatial dims
        return F.layer_norm(x, x.shape[1:], eps=self.eps) * self.weight.view(shape) + self.bias.view(shape)


def _instance_norm(channels: int, nd: int, eps: float, groups: int) -> nn.Module:
    if nd == 0:
        raise BlockError("instance norm needs a spatial input")
    return (None, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)[nd](channels, eps=eps, affine=True)


def _group_norm(channels: int, nd: int, eps: float, groups: int) -> nn.Module:
    groups = min(groups, channels)
    if channels % groups:
        raise BlockError(f"group norm: {channels} channels are not divisible into {groups} groups")
    return nn.GroupNorm(groups, channels, eps=eps)


# The one list of norm names: NormKind (the YAML schema) is made from it. Each entry takes
# (channels, nd, eps, groups); nd is the number of spatial dims, 0 for a flat input, where both
# layer norms are LayerNorm over its features.
NORMS: dict[str, Callable[[int, int, float, int], nn.Module]] = {
    "batch": lambda c, nd, eps, _: (nn.BatchNorm1d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)[nd](c, eps=eps),
    "layer": lambda c, nd, eps, _: nn.LayerNorm(c, eps=eps) if nd == 0 else SampleLayerNorm(c, eps=eps),
    # over the channels at each position (ConvNeXt, timm's LayerNorm2d)
    "layer2d": lambda c, nd, eps, _: nn.LayerNorm(c, eps=eps) if nd == 0 else ChannelLayerNorm(c, eps=eps),
    "instance": _instance_norm,
    "group": _group_norm,
    "none": lambda *_: nn.Identity(),
}

# The one list of activation names: ActKind is made from it. In place where the layer allows it;
# act_layer turns that off where the input must survive. Every layer has PyTorch's (and timm's)
# default arguments: `leaky_relu` is nn.LeakyReLU()'s slope 0.01, as in timm's CSPNet and DLA.
ACTS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    "gelu": nn.GELU,
    "silu": lambda: nn.SiLU(inplace=True),
    "swish": lambda: nn.SiLU(inplace=True),
    "mish": lambda: nn.Mish(inplace=True),
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "hardswish": lambda: nn.Hardswish(inplace=True),
    "hardsigmoid": lambda: nn.Hardsigmoid(inplace=True),
    "softplus": nn.Softplus,
    "prelu": nn.PReLU,
    "none": nn.Identity,
}

# Literal[("a", "b")] is Literal["a", "b"]: the choices in the tables' order (messages list them so)
NormKind = Literal[tuple(NORMS)]  # type: ignore[valid-type]
ActKind = Literal[tuple(ACTS)]  # type: ignore[valid-type]


def norm_layer(kind: str, channels: int, nd: int, eps: float = 1e-5, groups: int = 32) -> nn.Module:
    """A normalisation layer by name; ``nd`` is the number of spatial dims (0 for flat inputs)."""
    if kind not in NORMS:
        raise BlockError(f"unknown norm '{kind}'")
    return NORMS[kind](channels, nd, eps, groups)


def act_layer(kind: str, inplace: bool = True) -> nn.Module:
    """An activation by name. In-place is only safe right after a layer that made a fresh tensor."""
    layer = ACTS[kind]()
    if not inplace and hasattr(layer, "inplace"):
        layer.inplace = False
    return layer


class ConvNormAct(Block):
    """conv -> norm -> activation, the primitive every block reuses (keys: conv, norm, act).

    Padding defaults to 'same'-style ``dilation * (kernel - 1) // 2``; the conv has a bias only
    when there is no norm after it (a bias before batch norm is cancelled by its mean).
    """

    def __init__(self, nd: int, in_channels: int, out_channels: int, kernel: Size = 3, stride: Size = 1,
                 padding: Size | None = None, dilation: Size = 1, groups: int = 1, norm: str = "batch",
                 act: str = "relu", bias: bool | None = None, norm_eps: float = 1e-5):
        super().__init__()
        self.conv = make_conv(nd, in_channels, out_channels, kernel, stride, padding, dilation, groups,
                              bias=norm == "none" if bias is None else bias)
        self.norm = norm_layer(norm, out_channels, nd, norm_eps)
        self.act = act_layer(act)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class NormActConv(Block):
    """norm -> activation -> conv: the pre-activation order of DenseNet and identity-mapping ResNets.
    ``drop`` sits between the activation and the conv, where Wide ResNet drops; an identity here."""

    def __init__(self, nd: int, in_channels: int, out_channels: int, kernel: Size = 3, stride: Size = 1,
                 padding: Size | None = None, dilation: Size = 1, groups: int = 1, norm: str = "batch",
                 act: str = "relu", bias: bool = False, norm_eps: float = 1e-5):
        super().__init__()
        conv = make_conv(nd, in_channels, out_channels, kernel, stride, padding, dilation, groups, bias=bias)
        self.norm = norm_layer(norm, in_channels, nd, norm_eps)
        # in place only after a real norm (a fresh tensor): without one, the input - which a
        # pre-activation unit also uses as its shortcut - would be overwritten
        self.act = act_layer(act, inplace=norm != "none")
        self.drop: nn.Module = nn.Identity()
        self.conv = conv  # registered after norm and act: state-dict order is the order they run in
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.drop(self.act(self.norm(x))))
