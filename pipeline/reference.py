"""The block reference, generated from the registry: every block, every argument with its type, default
and meaning. ``python -m pipeline blocks --markdown`` prints it; the README holds a copy that a test
keeps equal.

An argument's meaning comes from its block's docstring (an ``Args:`` section) or, for arguments many
blocks share, from ``GLOSSARY`` below; names with a block prefix (``dense.growth``) are that block's.
Its bounds come from its type hint (``blocks.ranges``). ``pipeline.schema`` builds the JSON Schema's
descriptions (the editor's hover text) from ``block_rows`` too, so the README and the editor say the same.
"""
from __future__ import annotations

import inspect
import re
import types
import typing
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from .blocks import BLOCKS
from .blocks.base import ActKind, NormKind
from .blocks.ranges import Range

GLOSSARY = {
    "out": "output channels",
    "kernel": "kernel size",
    "stride": "stride (2 halves the size)",
    "padding": "zero padding per side; null = the size-keeping padding for the kernel and dilation",
    "dilation": "spacing of the kernel's taps (1 = a plain conv)",
    "groups": "grouped convolution: the channels are split into this many groups (input channels = depthwise)",
    "norm": "the block's normalisation: batch, layer (each sample over all its values), layer2d (over the "
            "channels at each position, as ConvNeXt), instance, group, or none",
    "norm_eps": "the norm's epsilon (TensorFlow-trained nets: 1e-3)",
    "act": "the block's activation (none = linear)",
    "bias": "give the conv a bias; null = only when there is no norm after it",
    "dropout": "dropout probability between the two convs (0 = none)",
    "drop_path": "stochastic-depth rate of the residual branch (training only; 0 = none)",
    "shortcut": "auto (identity when shapes agree, else projection), projection (1x1 conv + norm), identity, or "
                "pad (the ResNet paper's option A: subsample and zero-pad channels, no weights)",
    "zero_init": "start the branch's last norm scale at zero, so the block starts as the identity",
    "se": "squeeze-excitation on the branch, its width as a fraction of the output channels rounded to 8 "
          "(SE-ResNet: 1/16; 0 = none)",
    "ceil": "round the output size up instead of down",
    "count_include_pad": "average over the padded zeros too",
    "eps": "epsilon added to the variance",
    "kind": "which variant (see the type)",
    "p": "probability",
    "mode": "interpolation or padding mode (see the type)",
    "width": "middle width in channels; null = from the other arguments",
    "expand": "hidden width as a multiple of the input channels",
    "hidden": "hidden width in channels; overrides expand",
    "expand_divisor": "round in_channels x expand to a multiple of this (1 = to the nearest integer)",
    "act.kind": "the activation",
    "norm.kind": "the normalisation (layer: each sample over all its values; layer2d: over the channels at each "
                 "position)",
    "norm.groups": "number of groups of group norm (at most the channels)",
    "adaptive_pool.size": "output size",
    "adaptive_pool.kind": "average or max pooling",
    "global_pool.kind": "average or max over all positions",
    "global_pool.flatten": "return (C,) instead of (C, 1, 1)",
    "maxpool.kernel": "window size",
    "avgpool.kernel": "window size",
    "maxpool.stride": "step of the window; null = the kernel",
    "avgpool.stride": "step of the window; null = the kernel",
    "maxpool.padding": "implicit padding per side (at most half the kernel)",
    "avgpool.padding": "zero padding per side (at most half the kernel)",
    "lrn.size": "channels each value is normalised over",
    "lrn.alpha": "scale of the sum of squares",
    "lrn.beta": "exponent",
    "lrn.k": "additive constant",
    "dropout.p": "probability of zeroing each value (training only)",
    "linear.bias": "give the layer a bias",
    "linear.act": "activation after the layer",
    "bottleneck.groups": "groups of the 3x3 conv (ResNeXt: 32)",
    "bottleneck.base_width": "channels per group at out = 256 (ResNeXt 32x4d: 4; Wide ResNet-50-2: 128)",
    "bottleneck.width": "width of the 1x1-3x3-1x1 middle; null = out / 4 x base_width / 64 x groups",
    "preact.bottleneck": "1x1-3x3-1x1 units (width out / 4) instead of two 3x3 convs",
    "dense.layers": "number of dense layers",
    "dense.growth": "channels each layer adds (k)",
    "dense.bn_size": "the 1x1 bottleneck has bn_size x growth channels",
    "dense.dropout": "dropout after each layer",
    "dense.memory_efficient": "recompute the concatenations in backward instead of storing them (less memory)",
    "transition.theta": "compression: output channels = floor(theta x input channels)",
    "transition.out": "output channels; overrides theta",
    "transition.pool": "the 2x2 stride-2 pooling: avg, max or none",
    "dwsep.kernel": "depthwise kernel size",
    "inception.b1": "#1x1 branch width",
    "inception.b2": "[#3x3 reduce, #3x3] widths",
    "inception.b3": "[#5x5 reduce, #5x5] widths",
    "inception.b4": "pool proj width (1x1 after a 3x3 max pool)",
    "inception.b3_kernel": "kernel of the third branch (torchvision's GoogLeNet uses 3)",
    "inception.pool_ceil": "the branch's max pool rounds up (torchvision's GoogLeNet)",
    "dilated_residual.dilation": "dilation of the first 3x3 conv (and of the second unless dilation2)",
    "dilated_residual.dilation2": "dilation of the second 3x3 conv; null = dilation",
    "dilated_residual.residual": "add the shortcut (DRN-C's last layers have none)",
    "wavenet.layers": "dilated layers per stack; dilations 1, base, base^2, ...",
    "wavenet.stacks": "number of stacks",
    "wavenet.channels": "residual channels",
    "wavenet.skip": "skip channels summed over layers; null = channels",
    "wavenet.kernel": "causal kernel size",
    "wavenet.dilation_base": "the dilation grows by this factor per layer",
    "wavenet.act_out": "activation of the summed skip output",
    "timm.model": "a timm model name (created without pretrained weights)",
    "timm.features_only": "output a feature map instead of pooled features",
    "timm.out_index": "which feature map with features_only (-1 = the last)",
    "timm.pool": "timm's global pool for pooled features (avg, max, ...)",
    "timm.weights": "a local timm state dict to load (no download)",
}


def _summary(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    first = doc.split("\n\n")[0]
    return " ".join(line.strip() for line in first.splitlines()).replace("``", "`")


def docstring_args(cls: type) -> dict[str, str]:
    """``Args:`` of a block's docstring: name -> one line (continuation lines joined)."""
    doc = inspect.getdoc(cls) or ""
    if "Args:" not in doc:
        return {}
    out: dict[str, str] = {}
    current = None
    for line in doc.split("Args:", 1)[1].splitlines():
        match = re.match(r"^    ([A-Za-z_][A-Za-z0-9_]*): (.*)$", line)
        if match:
            current = match.group(1)
            out[current] = match.group(2).strip()
        elif line.startswith("        ") and current:
            out[current] += " " + line.strip()
        elif line.strip() and not line.startswith(" "):
            break
    return out


NAMED_TYPES = {ActKind: "activation", NormKind: "norm"}  # long choice lists, listed once above the blocks


def argument_hints(cls: type) -> dict[str, Any]:
    """A block's constructor hints with their ``Annotated`` bounds (the loader reads them without)."""
    return typing.get_type_hints(cls.__init__, include_extras=True)


def bounds(tp: Any) -> list[Range]:
    """The distinct ``Range`` bounds anywhere in a type hint (``int >= 1 | list[int >= 1]`` has one)."""
    if get_origin(tp) is Annotated:
        return [m for m in tp.__metadata__ if isinstance(m, Range)]
    found: list[Range] = []
    for arg in get_args(tp):
        found += [r for r in bounds(arg) if r not in found]
    return found


def type_text(tp: Any) -> str:
    """The hint in the reference's words, with its bound: "int or [h, w], >= 1"."""
    ranges = bounds(tp)
    text = _plain_type_text(tp)
    return f"{text}, {ranges[0].text()}" if len(ranges) == 1 else text


def _plain_type_text(tp: Any) -> str:
    if get_origin(tp) is Annotated:
        return _plain_type_text(get_args(tp)[0])
    if tp in NAMED_TYPES:
        return NAMED_TYPES[tp]
    origin = get_origin(tp)
    if origin is Literal:
        return " \\| ".join(str(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        parts = [_plain_type_text(a) for a in get_args(tp) if a is not type(None)]
        text = "int or [h, w]" if parts == ["int", "list of int"] else " or ".join(parts)
        return text + " or null" if type(None) in get_args(tp) else text
    if origin in (list, tuple):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        if origin is tuple and Ellipsis not in get_args(tp):
            return f"[{', '.join(_plain_type_text(a) for a in args)}]"
        return f"list of {_plain_type_text(args[0]) if args else 'values'}"
    return {int: "int", float: "number", bool: "bool", str: "string", dict: "mapping"}.get(tp, str(tp))


def default_text(default: Any) -> str:
    if default is inspect.Parameter.empty:
        return "required"
    if default is None:
        return "null"
    if isinstance(default, bool):
        return str(default).lower()
    return str(default)


def meaning(block: str, arg: str, documented: dict[str, str]) -> str | None:
    return documented.get(arg) or GLOSSARY.get(f"{block}.{arg}") or GLOSSARY.get(arg)


def block_rows(blocks: dict[str, type] | None = None) -> list[tuple[str, str, list[tuple[str, str, str, str | None]]]]:
    """(block, summary, [(argument, type, default, meaning)]) for every registered block, by name."""
    blocks = BLOCKS if blocks is None else blocks
    rows = []
    for name in sorted(blocks):
        cls = blocks[name]
        documented = docstring_args(cls)
        hints = argument_hints(cls)
        params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # self, in_shape
        args = [(p.name, type_text(hints[p.name]), default_text(p.default), meaning(name, p.name, documented))
                for p in params]
        summary = _summary(cls)
        if cls.merges:
            summary += " Takes `from: [a, b, ...]`."
        rows.append((name, summary, args))
    return rows


def preamble() -> str:
    choices = {label: " ".join(f"`{a}`" for a in get_args(tp)) for tp, label in NAMED_TYPES.items()}
    return (f"An *activation* is one of {choices['activation']}, each PyTorch's layer with its default arguments "
            "(`leaky_relu` is `nn.LeakyReLU()`, slope 0.01, as in timm; `prelu` one learnt slope starting at 0.25); "
            f"a *norm* is one of {choices['norm']}. "
            "*int or [h, w]* is one size for every spatial dimension or one per dimension (`[length]` in 1-D, "
            "`[d, h, w]` in 3-D).")


def markdown() -> str:
    lines = [preamble(), ""]
    for name, summary, args in block_rows():
        lines += [f"#### `{name}`", "", summary, ""]
        if args:
            lines += ["| argument | type | default | meaning |", "|---|---|---|---|"]
            lines += [f"| `{a}` | {t} | {d} | {m} |" for a, t, d, m in args]
            lines.append("")
    return "\n".join(lines)


def text() -> str:
    """Plain text for the terminal: one block per paragraph."""
    out = [preamble().replace("`", "").replace("*", ""), ""]
    for name, summary, args in block_rows():
        out.append(f"{name}: {summary}")
        out += [f"    {a} ({t}, {d}): {m}" for a, t, d, m in args]
        out.append("")
    return "\n".join(out).replace("\\|", "|")
