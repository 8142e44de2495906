"""Architecture file -> validated plan: every node's shape, parameters and MACs, no weights.

``plan_model`` reads a file (following ``extends:``), resolves variables, and walks the nodes in
order. Every block is first constructed on the weightless ``meta`` device to measure its output
shape, parameters and MACs, so every mistake, and every shape, is known before one weight is
allocated (and a file asking for 10^12 parameters is refused, not killed by the OOM killer).
Every block is treated alike through the two factory kinds below: a Python block class, or a
composite block written in YAML.
"""
from __future__ import annotations

import functools
import inspect
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..blocks import BLOCKS, Block
from ..blocks.base import format_shape
from ..errors import ArchError, BlockError, Loc
from .document import _check_keys, _plain, load_document
from .init import INIT_SCHEMES
from .loader import LocDict, LocList
from .macs import FlopCounter
from .model import GraphNet, needed_nodes
from .names import suggest_block
from .values import MAX_MAGNITUDE, Binding, Scope, close_matches, describe, resolve, type_hints

Shape = tuple[int, ...]
NODE_KEYS = ("block", "from", "repeat", "aux")
COMPOSITE_KEYS = ("description", "params", "nodes", "output")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
RESERVED = {"input"} | {n for n in dir(GraphNet) if not n.startswith("_")} | set(GraphNet.INSTANCE_ATTRIBUTES)
MAX_PARAMS = 2_000_000_000  # ~8 GB of fp32 weights: beyond any net this tool is meant for
MAX_NODES = 10_000  # nodes once repeats and composite blocks are expanded; the zoo's largest has < 100
MAX_REPEAT = 10_000
INPUT_NAMES = ("in_channels", "in_shape")  # variables a composite block's body reads its input shape from
ALL_BLOCKS = "*"  # `defaults: {"*": {...}}`: arguments for every block that has them


@dataclass
class NodePlan:
    """One node, fully resolved: everything ``materialize`` and ``summary`` need."""

    name: str  # dotted path for nested nodes, as in state-dict keys
    block: str
    inputs: tuple[str, ...]
    in_shapes: list[Shape]
    out_shape: Shape
    params: int
    macs: int
    loc: Loc | None
    factory: Any
    reps: list[tuple[list[Shape], Any]]  # per repetition: input shapes, and keyword args or a composite's sub-plan
    aux: float | None = None


@dataclass
class GraphPlan:
    nodes: list[NodePlan]
    output: str
    in_shape: Shape
    out_shape: Shape

    @property
    def params(self) -> int:
        return sum(n.params for n in self.nodes)

    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes)


@dataclass
class ModelPlan(GraphPlan):
    name: str = ""
    source: str = ""
    aux: dict[str, float] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    init: str = "default"
    norm_momentum: float | None = None  # of every batch norm's running statistics; None = PyTorch's 0.1
    file_input: tuple[int, ...] | None = None  # the file's own 'input' (in_shape may be an override)

    @property
    def inference_macs(self) -> int:
        """MACs of an eval-mode forward: auxiliary-only nodes are not run."""
        needed = needed_nodes(((n.name, n.inputs) for n in self.nodes), (self.output,))
        return sum(n.macs for n in self.nodes if n.name in needed)


class _Context:
    """State of one planning run: the file scope, block definitions, defaults and budgets."""

    def __init__(self, file_scope: Scope, composites: dict, defaults: LocDict, device: str):
        self.file_scope, self.composites, self.defaults, self.device = file_scope, composites, defaults, device
        self.params = 0
        self.nodes = 0
        # (block class, input shapes, arguments) -> (output shape, parameters, MACs): a repeated node is measured once
        self.measured: dict = {}
        self.stack: list[str] = []  # composites being expanded, to catch recursion

    def factory(self, name: str, loc: Loc | None, node: str):
        if name in self.composites:
            return self.composites[name]
        if name in BLOCKS:
            return _python_block(BLOCKS[name])
        raise ArchError(f"unknown block '{name}'{suggest_block(name, list(BLOCKS) + list(self.composites))}",
                        loc, node)


class PythonBlock:
    """A block implemented in Python; its constructor's type hints are its argument schema."""

    def __init__(self, cls: type[Block]):
        self.cls, self.merges = cls, cls.merges
        signature = list(inspect.signature(cls.__init__).parameters.values())[2:]  # self, in_shape
        hints = type_hints(cls.__init__)
        self.params = {p.name: (hints[p.name], p.default) for p in signature}

    def plan(self, in_shapes: list[Shape], args: dict[str, Binding], ctx: _Context, node: str, loc: Loc | None):
        kwargs = {}
        for name, (hint, default) in self.params.items():
            if name in args:
                b = args[name]
                kwargs[name] = resolve(b.raw, hint, b.scope, b.loc, f"argument '{name}'")
            elif default is inspect.Parameter.empty:
                raise ArchError(f"block '{_block_name(self.cls)}' needs argument '{name}'", loc, node)
        shape_in = in_shapes if self.merges else in_shapes[0]
        key = _measure_key(self.cls, in_shapes, kwargs, ctx.device)
        if key is not None and key in ctx.measured:
            return (kwargs, *ctx.measured[key])
        module = _construct(self.cls, shape_in, kwargs, ctx.device, node, loc, {k: b.loc for k, b in args.items()})
        try:
            with FlopCounter() as counter:
                out_shape = tuple(int(d) for d in module.out_shape(shape_in))
        except (RuntimeError, ValueError, IndexError, OverflowError) as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            shapes = " and ".join(format_shape(s) for s in in_shapes)
            small = "too small" in reason or "greater than actual input size" in reason
            prefix = "spatial size shrinks to zero: " if small else ""
            raise ArchError(f"{prefix}block '{_block_name(self.cls)}' cannot take input {shapes}: {reason}",
                            loc, node) from None
        params = sum(p.numel() for p in module.parameters())
        measured = out_shape, params, counter.flops // 4  # batch 2, 2 flops per MAC
        if key is not None:
            ctx.measured[key] = measured
        return (kwargs, *measured)

    def materialize(self, in_shapes: list[Shape], kwargs: dict) -> nn.Module:
        return self.cls(in_shapes if self.merges else in_shapes[0], **kwargs)


class CompositeBlock:
    """A block declared in the file's ``blocks:`` section: parameters plus a sub-graph."""

    merges = False

    def __init__(self, name: str, spec: LocDict):
        self.name, self.spec = name, spec
        _check_keys(spec, COMPOSITE_KEYS, f"block '{name}'")
        params = spec.get("params") or LocDict()
        if not isinstance(params, dict):
            raise ArchError(f"block '{name}': 'params' must be a mapping of name: default (null = required)",
                            spec.loc_of("params"))
        self.params = params
        for reserved in INPUT_NAMES:
            if reserved in params:
                raise ArchError(f"block '{name}': parameter name '{reserved}' is reserved (it is the block's input "
                                f"{'channels' if reserved == 'in_channels' else 'shape'})", params.key_loc(reserved))
        if not isinstance(spec.get("nodes"), dict) or not spec["nodes"]:
            raise ArchError(f"block '{name}' needs 'nodes': a mapping of node name to node", spec.loc_of("nodes"))

    def plan(self, in_shapes: list[Shape], args: dict[str, Binding], ctx: _Context, node: str, loc: Loc | None):
        if self.name in ctx.stack:
            raise ArchError(f"block '{self.name}' uses itself (through {' -> '.join(ctx.stack)})", loc, node)
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
        ctx.stack.append(self.name)
        try:
            sub = plan_graph(self.spec["nodes"], in_shapes[0], scope, ctx, node + ".", self.spec)
        finally:
            ctx.stack.pop()
        return sub, sub.out_shape, sub.params, sub.macs

    def materialize(self, in_shapes: list[Shape], sub: GraphPlan) -> nn.Module:
        from .graph import materialize_graph  # graph imports this module: resolved at call time

        return materialize_graph(sub)


@functools.cache
def _python_block(cls: type[Block]) -> PythonBlock:
    return PythonBlock(cls)


def _block_name(cls: type) -> str:
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
        raise ArchError(f"block '{_block_name(cls)}': {reason}", loc, node) from None
    for name, param in module.named_parameters():
        if param.numel() == 0:
            raise ArchError(f"block '{_block_name(cls)}': layer '{name.rsplit('.', 1)[0]}' would have no weights "
                            f"(shape {format_shape(tuple(param.shape))}); check the block's sizes", loc, node)
    return module


# ---------------------------------------------------------------------------------------------
# planning


def plan_graph(nodes: LocDict, in_shape: Shape, scope: Scope, ctx: _Context, prefix: str = "",
               owner: LocDict | None = None) -> GraphPlan:
    """Resolve and shape-check every node of one graph (the model, or a composite's body)."""
    if not isinstance(nodes, dict):
        raise ArchError("'nodes' must be a mapping of node name to node", getattr(nodes, "loc", None))
    shapes: dict[str, Shape] = {"input": in_shape}
    plans: list[NodePlan] = []
    previous = "input"
    for key, spec in nodes.items():
        name, loc = str(key), nodes.loc_of(key)
        path = prefix + name
        if not NAME.match(name):
            raise ArchError(f"node name '{name}' must be letters, digits and _ (not starting with _)",
                            nodes.key_loc(key), path)
        if name in RESERVED:
            raise ArchError(f"node name '{name}' is reserved; choose another name", nodes.key_loc(key), path)
        if isinstance(spec, str):  # shorthand `flat: flatten`
            spec = LocDict(block=spec)
            spec.loc, spec.key_locs, spec.value_locs = loc, {"block": loc}, {"block": loc}
        if not isinstance(spec, dict):
            raise ArchError(f"a node must be a mapping with 'block:', got {describe(spec)}", loc, path)
        if "block" not in spec:
            raise ArchError("node needs 'block:' (the block type)", loc, path)
        block = resolve(spec["block"], str, scope, spec.loc_of("block"), "'block'")
        factory = ctx.factory(block, spec.loc_of("block"), path)

        inputs = _inputs(spec, shapes, previous, path)
        if len(inputs) > 1 and not factory.merges:
            raise ArchError(f"block '{block}' takes one input, got {len(inputs)} in 'from'", spec.loc_of("from"), path)
        aux = None
        if "aux" in spec:
            if prefix:
                raise ArchError("'aux' outputs can only be declared in the top-level 'nodes'", spec.key_loc("aux"), path)
            aux = resolve(spec["aux"], float, scope, spec.loc_of("aux"), "'aux' (loss weight)")
            if not aux >= 0:  # 0 keeps the head (and its weights) but switches it off in training
                raise ArchError(f"'aux' loss weight must be positive or 0 (off), got {aux}", spec.loc_of("aux"), path)
        repeat = resolve(spec.get("repeat", 1), int, scope, spec.loc_of("repeat"), "'repeat'")
        if not 0 <= repeat <= MAX_REPEAT or (repeat == 0 and factory.merges):
            raise ArchError(f"'repeat' must be between {1 if factory.merges else 0} and {MAX_REPEAT}, got {repeat}",
                            spec.loc_of("repeat"), path)
        if repeat > 1 and factory.merges:
            raise ArchError(f"block '{block}' merges inputs and cannot be repeated", spec.loc_of("repeat"), path)

        args = _args(spec, block, factory, ctx, scope, path)
        in_shapes = [shapes[i] for i in inputs]
        reps, params, macs, current = [], 0, 0, in_shapes
        for index in range(repeat):
            ctx.nodes += 1
            if ctx.nodes > MAX_NODES:
                raise ArchError(f"the model has more than {MAX_NODES} nodes once repeats are expanded", loc, path)
            # `i` exists whenever `repeat:` is written, even when it evaluates to 1 (a computed depth)
            rep_args = {k: Binding(b.raw, b.scope.child({"i": index}), b.loc) for k, b in args.items()} \
                if "repeat" in spec else args
            rep_path = f"{path}.{index}" if repeat > 1 else path
            try:
                rep, out_shape, rep_params, rep_macs = factory.plan(current, rep_args, ctx, rep_path, loc)
            except ArchError as err:
                raise err.at(loc, rep_path) from None
            if any(d <= 0 for d in out_shape):
                raise ArchError(f"spatial size shrinks to zero: output {format_shape(out_shape)} from input "
                                f"{' and '.join(format_shape(s) for s in current)}", loc, rep_path)
            if math.prod(out_shape) > MAX_MAGNITUDE:
                raise ArchError(f"output {format_shape(out_shape)} has more than 10**15 values per sample",
                                loc, rep_path)
            ctx.params += rep_params if not prefix else 0
            reps.append((current, rep))
            params, macs, current = params + rep_params, macs + rep_macs, [out_shape]
            if ctx.params > MAX_PARAMS:
                raise ArchError(f"the model would have more than {MAX_PARAMS:.1e} parameters "
                                f"({ctx.params:.2e} so far); refusing to allocate it", loc, rep_path)
        shapes[name] = current[0]
        plans.append(NodePlan(path, block, tuple(i if i == "input" else prefix + i for i in inputs), in_shapes,
                              current[0], params, macs, loc, factory, reps, aux))
        if aux is None:
            previous = name
    output = _output(owner, nodes, shapes, plans, prefix)
    _check_all_used(plans, nodes, output, prefix)
    return GraphPlan(plans, prefix + output, in_shape, shapes[output])


def _inputs(spec: LocDict, shapes: dict, previous: str, path: str) -> list[str]:
    if "from" not in spec:
        return [previous]
    raw = spec["from"]
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(s, (str, int)) and not isinstance(s, bool) for s in items):
        raise ArchError("'from' must be a node name or a list of node names", spec.loc_of("from"), path)
    names = []
    for index, item in enumerate(items):
        name = str(item)
        where = raw.loc_of(index) if isinstance(raw, LocList) else spec.loc_of("from")
        if name not in shapes:
            if name == path.rsplit(".", 1)[-1]:
                raise ArchError("'from' refers to the node itself: the graph must be acyclic", where, path)
            raise ArchError(f"'from' refers to '{name}', which is not a node defined before this one (nodes can "
                            f"only read earlier nodes; the graph must be acyclic){close_matches(name, shapes)}",
                            where, path)
        names.append(name)
    return names


def _args(spec: LocDict, block: str, factory, ctx: _Context, scope: Scope, path: str) -> dict[str, Binding]:
    """The node's arguments (file-wide ``defaults:`` for its block, then its own), unevaluated."""
    args: dict[str, Binding] = {}
    common = ctx.defaults.get(ALL_BLOCKS) if isinstance(ctx.defaults, dict) else None
    defaults = ctx.defaults.get(block) if isinstance(ctx.defaults, dict) else None
    for source, source_scope in ((common, ctx.file_scope), (defaults, ctx.file_scope), (spec, scope)):
        if not isinstance(source, dict):
            continue
        for key, raw in source.items():
            if source is spec and key in NODE_KEYS:
                continue
            if source is common and key not in factory.params:
                continue  # "*" sets an argument only in blocks that have it
            if key not in factory.params:
                where = source.key_loc(key)
                hint = _quote_hint(source, key) or close_matches(key, factory.params)
                raise ArchError(f"block '{block}' has no argument '{key}'{hint}", where, path)
            args[key] = Binding(raw, source_scope, source.loc_of(key))
    return args


def _quote_hint(mapping: LocDict, key: Any) -> str:
    """For `{out: max(a, b)}`: YAML split the value at the comma, making 'b)' a key; say to quote it."""
    def unbalanced(text: str) -> bool:
        return text.count("(") != text.count(")") or text.count("[") != text.count("]")

    split_value = mapping[key] is None and any(isinstance(v, str) and unbalanced(v) for v in mapping.values())
    if unbalanced(str(key)) or split_value:
        return ("; inside {...} YAML splits a value at each comma: quote a value that contains a comma, "
                "like out: \"make_divisible(w, 8)\"")
    return ""


def _output(owner: LocDict | None, nodes: LocDict, shapes: dict, plans: list[NodePlan], prefix: str) -> str:
    if owner is not None and "output" in owner:
        name = str(owner["output"])
        if name not in shapes or name == "input":
            raise ArchError(f"'output' names '{name}', which is not a node{close_matches(name, list(nodes))}",
                            owner.loc_of("output"))
        return name
    main = [p for p in plans if p.aux is None]
    if not main:
        raise ArchError("every node is an auxiliary output; the main output must be a node without 'aux'",
                        nodes.loc)
    return main[-1].name[len(prefix):]


def _check_all_used(plans: list[NodePlan], nodes: LocDict, output: str, prefix: str) -> None:
    needed = needed_nodes(((p.name, p.inputs) for p in plans),
                          {prefix + output} | {p.name for p in plans if p.aux is not None})
    for plan in plans:
        if plan.name not in needed:
            raise ArchError("node is not used: no output depends on it (remove it, or read it with 'from')",
                            plan.loc, plan.name)


def plan_model(source: str | Path | Mapping, input_shape: tuple[int, ...] | None = None, device: str = "meta",
               **var_overrides: Any) -> ModelPlan:
    """Validate an architecture and compute every node's shape, parameters and MACs (no weights)."""
    try:
        return _plan_model(source, input_shape, device, **var_overrides)
    except ArchError as err:  # every message names a place, at worst the top of the file
        file = "<mapping>" if isinstance(source, Mapping) else str(source)
        if err.loc is None and (isinstance(source, Mapping) or Path(source).is_file()):
            raise err.at(Loc(file, 1, 1)) from None
        raise


def _plan_model(source, input_shape, device, **var_overrides) -> ModelPlan:
    doc = load_document(source)
    file = str(source) if not isinstance(source, Mapping) else "<mapping>"
    file_scope = Scope()
    raw_vars = doc.get("vars") or LocDict()
    if not isinstance(raw_vars, dict):
        raise ArchError("'vars' must be a mapping of name: value", doc.loc_of("vars"))
    for name, raw in raw_vars.items():
        if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name) or name == "i":
            raise ArchError(f"variable name '{name}' must be an identifier (and not 'i', the repeat index)",
                            raw_vars.key_loc(name))
        file_scope.bindings[name] = Binding(raw, file_scope, raw_vars.loc_of(name))
    for name, raw in var_overrides.items():
        if name not in raw_vars:
            raise ArchError(f"cannot override variable '{name}': the file does not define it"
                            f"{close_matches(name, list(raw_vars))}", doc.loc_of("vars") if raw_vars else doc.loc)
        file_scope.bindings[name] = Binding(_plain(raw), file_scope, raw_vars.loc_of(name))

    composites = {}
    blocks = doc.get("blocks") or LocDict()
    if not isinstance(blocks, dict):
        raise ArchError("'blocks' must be a mapping of block name to definition", doc.loc_of("blocks"))
    for name, spec in blocks.items():
        if not isinstance(spec, dict):
            raise ArchError(f"block '{name}' must be a mapping with 'params' and 'nodes'", blocks.loc_of(name))
        if name in BLOCKS:
            raise ArchError(f"block '{name}' is a built-in block; choose another name", blocks.key_loc(name))
        composites[str(name)] = CompositeBlock(str(name), spec)
    defaults = doc.get("defaults") or LocDict()
    if not isinstance(defaults, dict) or not all(isinstance(v, dict) for v in defaults.values()):
        raise ArchError("'defaults' must map block names to argument mappings", doc.loc_of("defaults"))
    for name in defaults:
        if name not in BLOCKS and name not in composites and name != ALL_BLOCKS:
            raise ArchError(f"defaults: unknown block '{name}'{suggest_block(name, list(BLOCKS) + list(composites))}",
                            defaults.key_loc(name))

    if "input" not in doc and input_shape is None:
        raise ArchError("the file needs 'input': the input shape [C, H, W] (or [C, L])", doc.loc)
    raw_input = list(input_shape) if input_shape is not None else doc["input"]
    shape = tuple(resolve(raw_input, list[int], file_scope, doc.loc_of("input"), "'input'"))
    if not 1 <= len(shape) <= 4 or any(d <= 0 for d in shape):
        raise ArchError(f"'input' must be 1 to 4 positive sizes like [3, 224, 224], got {list(shape)}",
                        doc.loc_of("input"))
    file_input = shape if input_shape is None else _file_input(doc, file_scope)
    if "nodes" not in doc:
        raise ArchError("the file needs 'nodes': a mapping of node name to node", doc.loc)
    if not isinstance(doc["nodes"], dict) or not doc["nodes"]:
        raise ArchError(f"'nodes' must be a mapping of node name to node, got {describe(doc['nodes'])}",
                        doc.loc_of("nodes"))

    ctx = _Context(file_scope, composites, defaults, device)
    graph = plan_graph(doc["nodes"], shape, file_scope, ctx, "", doc)
    init = resolve(doc.get("init", "default"), str, file_scope, doc.loc_of("init"), "'init'")
    if init not in INIT_SCHEMES:
        raise ArchError(f"unknown init scheme '{init}'{close_matches(init, INIT_SCHEMES)}", doc.loc_of("init"))
    momentum = resolve(doc.get("norm_momentum"), float | None, file_scope, doc.loc_of("norm_momentum"),
                       "'norm_momentum'")
    if momentum is not None and not 0 < momentum <= 1:
        raise ArchError(f"'norm_momentum' must be in (0, 1] (PyTorch's default is 0.1), got {momentum}",
                        doc.loc_of("norm_momentum"))
    shown_vars = {name: _show(file_scope, name) for name in raw_vars}
    return ModelPlan(graph.nodes, graph.output, shape, graph.out_shape, name=str(doc.get("name", Path(file).stem)),
                     source=file, aux={p.name: p.aux for p in graph.nodes if p.aux is not None}, vars=shown_vars,
                     init=init, norm_momentum=momentum, file_input=file_input)


def _file_input(doc: LocDict, scope: Scope) -> tuple[int, ...] | None:
    """The file's own input shape where an override replaced it (None if it has none that resolves)."""
    if "input" not in doc:
        return None
    try:
        return tuple(resolve(doc["input"], list[int], scope, doc.loc_of("input"), "'input'"))
    except ArchError:
        return None


def _show(scope: Scope, name: str) -> Any:
    binding = scope.bindings[name]
    try:
        return resolve(binding.raw, Any, scope, binding.loc, name, numeric=True)
    except ArchError:
        return binding.raw
