"""The two kinds of block factory (the contract is ``plans.BlockFactory``): a block class written in
Python, and a composite block declared in the file's ``blocks:`` section.

A Python block is measured by constructing it on the weightless ``meta`` device and running its
``out_shape`` under a FLOP counter; a composite block by planning its body as a graph of its own.
"""
from __future__ import annotations

import functools
import inspect
import warnings
from typing import Any

import torch
from torch import nn

from ..blocks import BLOCKS, Block
from ..blocks.base import format_shape
from ..errors import ArchError, BlockError, Loc
from .build import materialize_graph
from .document import _check_keys
from .loader import LocDict
from .macs import FlopCounter
from .model import NAME, RESERVED
from .plans import GraphPlan, Measured, Planner, Shape
from .values import INPUT_NAMES, Binding, Scope, resolve, type_hints

COMPOSITE_KEYS = ("description", "params", "inputs", "nodes", "output")
MAX_RECURSION = 16  # nested uses of one composite block: a tree 16 levels deep is beyond any published net


class PythonBlock:
    """A block implemented in Python; its constructor's type hints are its argument schema."""

    def __init__(self, cls: type[Block]):
        self.cls, self.merges, self.inputs = cls, cls.merges, ()
        signature = list(inspect.signature(cls.__init__).parameters.values())[2:]  # self, in_shape
        hints = type_hints(cls.__init__)
        self.params = {p.name: (hints[p.name], p.default) for p in signature}
        self.required = tuple(p.name for p in signature if p.default is inspect.Parameter.empty)

    def plan(self, in_shapes: list[Shape], args: dict[str, Binding], ctx: Planner, node: str,
             loc: Loc | None) -> Measured[dict[str, Any]]:
        kwargs = {}
        for name, (hint, default) in self.params.items():
            if name in args:
                b = args[name]
                kwargs[name] = resolve(b.raw, hint, b.scope, b.loc, f"argument '{name}'")
            elif default is inspect.Parameter.empty:
                raise ArchError(f"block '{block_name(self.cls)}' needs argument '{name}'", loc, node)
        shape_in = in_shapes if self.merges else in_shapes[0]
        key = _measure_key(self.cls, in_shapes, kwargs, ctx.device)
        if key is not None and key in ctx.measured:
            return Measured(kwargs, *ctx.measured[key])
        module = _construct(self.cls, shape_in, kwargs, ctx.device, node, loc, {k: b.loc for k, b in args.items()})
        try:
            with FlopCounter() as counter:
                out_shape = tuple(int(d) for d in module.out_shape(shape_in))
        except (RuntimeError, ValueError, IndexError, OverflowError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            shapes = " and ".join(format_shape(s) for s in in_shapes)
            small = "too small" in reason or "greater than actual input size" in reason
            prefix = "spatial size shrinks to zero: " if small else ""
            raise ArchError(f"{prefix}block '{block_name(self.cls)}' cannot take input {shapes}: {reason}",
                            loc, node) from None
        params = sum(p.numel() for p in module.parameters())
        measured = out_shape, params, counter.flops // 4  # batch 2, 2 flops per MAC
        if key is not None:
            ctx.measured[key] = measured
        return Measured(kwargs, *measured)

    def materialize(self, in_shapes: list[Shape], build: dict[str, Any]) -> nn.Module:
        return self.cls(in_shapes if self.merges else in_shapes[0], **build)


class CompositeBlock:
    """A block declared in the file's ``blocks:`` section: parameters plus a sub-graph."""

    def __init__(self, name: str, spec: LocDict):
        self.name, self.spec = name, spec
        _check_keys(spec, COMPOSITE_KEYS, f"block '{name}'")
        self.inputs = _input_names(name, spec)
        self.merges = bool(self.inputs)  # `from: [a, b]` binds a to the first name, b to the second
        params = spec.get("params") or LocDict()
        if not isinstance(params, dict):
            raise ArchError(f"block '{name}': 'params' must be a mapping of name: default (null = required)",
                            spec.loc_of("params"))
        self.params = params
        self.required = tuple(str(n) for n, default in params.items() if default is None)
        for reserved in INPUT_NAMES:
            if reserved in params:
                raise ArchError(f"block '{name}': parameter name '{reserved}' is reserved (it is the block's input "
                                f"{'channels' if reserved == 'in_channels' else 'shape'})", params.key_loc(reserved))
        if not isinstance(spec.get("nodes"), dict) or not spec["nodes"]:
            raise ArchError(f"block '{name}' needs 'nodes': a mapping of node name to node", spec.loc_of("nodes"))

    def plan(self, in_shapes: list[Shape], args: dict[str, Binding], ctx: Planner, node: str,
             loc: Loc | None) -> Measured[GraphPlan]:
        uses = [path for name, path in ctx.stack if name == self.name]
        if len(uses) >= MAX_RECURSION:  # a block may use itself (DLA's trees) when a condition ends it
            raise ArchError(f"block '{self.name}' uses itself more than {MAX_RECURSION} deep: nothing ends the "
                            "recursion (give the node that uses it an 'if:' that turns false, or 'repeat: 0')",
                            loc, uses[1] if len(uses) > 1 else node)
        scope = Scope(parent=ctx.file_scope)
        # the block's input, readable in its expressions (an SE block's `out: in_channels`)
        scope.bindings.update({"in_channels": Binding(in_shapes[0][0], scope, loc),
                               "in_shape": Binding(list(in_shapes[0]), scope, loc)})
        for name, default in self.params.items():
            if name in args:
                scope.bindings[name] = args[name]
            elif default is None:
                raise ArchError(f"block '{self.name}' needs argument '{name}'", loc, node)
            else:
                scope.bindings[name] = Binding(default, scope, self.params.loc_of(name))
        ctx.stack.append((self.name, node))
        try:
            sub = ctx.graph(self.spec["nodes"], in_shapes[0], scope, node + ".", self.spec,
                            dict(zip(self.inputs, in_shapes)))
        finally:
            ctx.stack.pop()
        return Measured(sub, sub.out_shape, sub.params, sub.macs)

    def materialize(self, in_shapes: list[Shape], build: GraphPlan) -> nn.Module:
        return materialize_graph(build)


def _input_names(name: str, spec: LocDict) -> tuple[str, ...]:
    """A composite's ``inputs: [x, skip]``: two or more names for the inputs a node gives in ``from:``."""
    if "inputs" not in spec:
        return ()
    raw, where = spec["inputs"], spec.loc_of("inputs")
    if not isinstance(raw, list) or len(raw) < 2 or not all(isinstance(n, str) for n in raw):
        raise ArchError(f"block '{name}': 'inputs' must list two or more names (a block of one input reads "
                        "it as 'input')", where)
    for index, item in enumerate(raw):
        item_loc = raw.loc_of(index) if hasattr(raw, "loc_of") else where
        if not NAME.match(item) or item in RESERVED:
            raise ArchError(f"block '{name}': input name '{item}' must be letters, digits and _ and not a reserved "
                            "name (input, forward, ...)", item_loc)
        if item in raw[:index]:
            raise ArchError(f"block '{name}': input '{item}' is named twice", item_loc)
        if isinstance(spec.get("nodes"), dict) and item in spec["nodes"]:
            raise ArchError(f"block '{name}': '{item}' is both an input and a node", item_loc)
    return tuple(raw)


@functools.cache
def python_block(cls: type[Block]) -> PythonBlock:
    return PythonBlock(cls)


def block_name(cls: type) -> str:
    return next((n for n, c in BLOCKS.items() if c is cls), cls.__name__)


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _hashable(v)) for k, v in value.items())
    return (type(value), value)  # 1, 1.0 and True are equal, yet not the same argument


def _measure_key(cls, in_shapes, kwargs, device):
    try:
        key = (cls, tuple(in_shapes), _hashable(sorted(kwargs.items())), device)
        hash(key)
    except TypeError:
        return None
    return key


def _construct(cls, shape_in, kwargs, device, node, loc, arg_locs=None):
    try:
        with torch.device(device), warnings.catch_warnings():
            # a layer with a zero-sized weight: reported below as an error, not as a warning
            warnings.filterwarnings("ignore", "Initializing zero-element tensors is a no-op")
            module = cls(shape_in, **kwargs)
    except BlockError as err:  # at the argument it names, when the node wrote it
        raise ArchError(str(err), (arg_locs or {}).get(getattr(err, "arg", None)) or loc, node) from None
    except (RuntimeError, ValueError, OverflowError) as err:  # torch's own argument checks
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ArchError(f"block '{block_name(cls)}': {reason}", loc, node) from None
    for name, param in module.named_parameters():
        if param.numel() == 0:
            raise ArchError(f"block '{block_name(cls)}': layer '{name.rsplit('.', 1)[0]}' would have no weights "
                            f"(shape {format_shape(tuple(param.shape))}); check the block's sizes", loc, node)
    return module
