"""Planning one graph (the model's nodes, or a composite block's body), node by node in file order.

Each node is validated (its name, block, inputs, ``aux`` and ``repeat``, and arguments as written),
expanded into its copies (``repeat: N``, each with the index ``i``), and each copy is measured by
the node's factory (``plans.BlockFactory``), within the run's budgets of nodes and parameters. A node
whose ``if:`` is false is validated as written and then left out: later nodes chain past it, and a
merge drops it from its inputs (RepVGG's identity branch exists only where the shapes allow it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

from ..blocks import BLOCKS
from ..blocks.base import format_shape
from ..errors import ArchError, Loc
from .expr import MAX_MAGNITUDE
from .factories import python_block
from .loader import LocDict, LocList
from .model import NAME, RESERVED, needed_nodes
from .names import suggest_block
from .plans import BlockFactory, GraphPlan, NodePlan, Shape
from .values import Binding, Scope, close_matches, describe, resolve

NODE_KEYS = ("block", "from", "repeat", "aux", "if")
MAX_PARAMS = 2_000_000_000  # ~8 GB of fp32 weights: beyond any net this tool is meant for
MAX_NODES = 10_000  # nodes once repeats and composite blocks are expanded; the zoo's largest has < 100
MAX_REPEAT = 10_000
ALL_BLOCKS = "*"  # `defaults: {"*": {...}}`: arguments for every block that has them


class Planning:
    """State of one planning run (a ``plans.Planner``): the file scope, block definitions, defaults
    and budgets."""

    def __init__(self, file_scope: Scope, composites: dict[str, BlockFactory], defaults: LocDict, device: str):
        self.file_scope, self.composites, self.defaults, self.device = file_scope, composites, defaults, device
        self.params = 0
        self.nodes = 0
        # (block class, input shapes, arguments) -> (output shape, parameters, MACs): a repeated node is measured once
        self.measured: dict = {}
        self.stack: list[tuple[str, str]] = []  # (composite, node path) being expanded, to bound recursion

    def factory(self, name: str, loc: Loc | None, node: str) -> BlockFactory:
        if name in self.composites:
            return self.composites[name]
        if name in BLOCKS:
            return python_block(BLOCKS[name])
        raise ArchError(f"unknown block '{name}'{suggest_block(name, list(BLOCKS) + list(self.composites))}",
                        loc, node)

    def graph(self, nodes: LocDict, in_shape: Shape, scope: Scope, prefix: str, owner: LocDict,
              inputs: dict[str, Shape] | None = None) -> GraphPlan:
        return plan_graph(nodes, in_shape, scope, self, prefix, owner, inputs)


@dataclass
class _Node:
    """A node as written, validated: what expanding and measuring it need."""

    name: str
    path: str  # dotted, for nested nodes
    loc: Loc | None
    spec: LocDict
    block: str
    factory: BlockFactory
    inputs: list[str]  # local names
    aux: float | None
    repeat: int
    args: dict[str, Binding]  # unevaluated: each copy evaluates them with its own `i`


def plan_graph(nodes: LocDict, in_shape: Shape, scope: Scope, ctx: Planning, prefix: str = "",
               owner: LocDict | None = None, inputs: dict[str, Shape] | None = None) -> GraphPlan:
    """Resolve and shape-check every node of one graph (the model, or a composite's body): in file
    order, each node is validated, expanded into its copies, and each copy measured. ``inputs``: a
    composite's named inputs (the first is also ``input``), read like nodes."""
    if not isinstance(nodes, dict):
        raise ArchError("'nodes' must be a mapping of node name to node", getattr(nodes, "loc", None))
    shapes: dict[str, Shape] = {"input": in_shape, **(inputs or {})}
    plans: list[NodePlan] = []
    left_out: dict[str, list[str]] = {}  # nodes whose `if:` is false -> the names their `from:` reads
    previous = "input"
    for key, spec in nodes.items():
        try:
            node = _validate(key, spec, nodes, shapes, previous, scope, ctx, prefix, left_out)
        except ArchError as err:  # `if:`, `block:` and `repeat:` errors name the node too
            raise err.at(nodes.loc_of(key), prefix + str(key)) from None
        if node is None:
            continue
        plan = _measure(node, _expand(node, ctx), [shapes[i] for i in node.inputs], ctx, prefix)
        shapes[node.name] = plan.out_shape
        plans.append(plan)
        if node.aux is None:
            previous = node.name
    output = _output(owner, nodes, shapes, plans, prefix, left_out)
    _check_all_used(plans, nodes, output, prefix, left_out)
    return GraphPlan(plans, prefix + output, in_shape, shapes[output], tuple(inputs or ()))


def _validate(key: Any, spec: Any, nodes: LocDict, shapes: dict, previous: str, scope: Scope, ctx: Planning,
              prefix: str, left_out: dict[str, list[str]]) -> _Node | None:
    """Check one node as written: name, block, inputs, ``aux``, ``repeat`` and argument names. A node
    whose ``if:`` is false gets the same checks (a mistake is one in every configuration), is recorded in
    ``left_out`` with the nodes it reads, and gives None."""
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
    keep = "if" not in spec or resolve(spec["if"], bool, scope, spec.loc_of("if"), "'if' (the condition for this node)")
    reads = _reads(spec, shapes, left_out, previous, path, scope)
    if len(reads) > 1 and not factory.merges:
        raise ArchError(f"block '{block}' takes one input, got {len(reads)} in 'from'", spec.loc_of("from"), path)
    if factory.inputs and len(reads) != len(factory.inputs):
        raise ArchError(f"block '{block}' takes {len(factory.inputs)} inputs ({', '.join(factory.inputs)}), got "
                        f"{len(reads)} in 'from'", spec.loc_of("from") if "from" in spec else loc, path)
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
    if not keep:
        missing = [n for n in factory.required if n not in args]  # measuring would say so of a node kept
        if missing:
            raise ArchError(f"block '{block}' needs argument '{missing[0]}'", loc, path)
        left_out[name] = reads
        return None
    inputs = _kept_inputs(reads, spec, left_out, factory, path)
    return _Node(name, path, loc, spec, block, factory, inputs, aux, repeat, args)


def _expand(node: _Node, ctx: Planning) -> Iterator[tuple[str, dict[str, Binding]]]:
    """The node's copies as (path, arguments), one at a time: each counts against the node budget
    before it is measured."""
    for index in range(node.repeat):
        ctx.nodes += 1
        if ctx.nodes > MAX_NODES:
            raise ArchError(f"the model has more than {MAX_NODES} nodes once repeats are expanded",
                            node.loc, node.path)
        # `i` exists whenever `repeat:` is written, even when it evaluates to 1 (a computed depth)
        args = {k: Binding(b.raw, b.scope.child({"i": index}), b.loc) for k, b in node.args.items()} \
            if "repeat" in node.spec else node.args
        yield (f"{node.path}.{index}" if node.repeat > 1 else node.path), args


def _measure(node: _Node, copies: Iterator[tuple[str, dict[str, Binding]]], in_shapes: list[Shape],
             ctx: Planning, prefix: str) -> NodePlan:
    """Measure the copies in a chain, each taking the previous one's output."""
    loc = node.loc
    reps, params, macs, current = [], 0, 0, in_shapes
    for path, args in copies:
        try:
            measured = node.factory.plan(current, args, ctx, path, loc)
        except ArchError as err:
            raise err.at(loc, path) from None
        out_shape = measured.out_shape
        if any(d <= 0 for d in out_shape):
            raise ArchError(f"spatial size shrinks to zero: output {format_shape(out_shape)} from input "
                            f"{' and '.join(format_shape(s) for s in current)}", loc, path)
        if math.prod(out_shape) > MAX_MAGNITUDE:
            raise ArchError(f"output {format_shape(out_shape)} has more than 10**15 values per sample", loc, path)
        ctx.params += measured.params if not prefix else 0  # a composite's nodes count once, as the composite
        reps.append((current, measured.build))
        params, macs, current = params + measured.params, macs + measured.macs, [out_shape]
        if ctx.params > MAX_PARAMS:
            raise ArchError(f"the model would have more than {MAX_PARAMS:.1e} parameters "
                            f"({ctx.params:.2e} so far); refusing to allocate it", loc, path)
    inputs = tuple(i if i == "input" else prefix + i for i in node.inputs)
    return NodePlan(node.path, node.block, inputs, in_shapes, current[0], params, macs, loc, node.factory, reps,
                    node.aux)


def _reads(spec: LocDict, shapes: dict, left_out: dict[str, list[str]], previous: str, path: str,
           scope: Scope) -> list[str]:
    """The nodes this one reads as written: ``from:`` checked against the nodes before it (kept or left
    out), or the previous node. An entry may be ``$name`` or ``${...}``: a node chosen by a variable."""
    if "from" not in spec:
        return [previous]
    raw = spec["from"]
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(s, (str, int)) and not isinstance(s, bool) for s in items):
        raise ArchError("'from' must be a node name or a list of node names", spec.loc_of("from"), path)
    names = []
    for index, item in enumerate(items):
        where = _from_loc(spec, index)
        name = resolve(item, str, scope, where, "'from'") if isinstance(item, str) and "$" in item else str(item)
        if name not in shapes and name not in left_out:
            if name == path.rsplit(".", 1)[-1]:
                raise ArchError("'from' refers to the node itself: the graph must be acyclic", where, path)
            raise ArchError(f"'from' refers to '{name}', which is not a node defined before this one (nodes can "
                            f"only read earlier nodes; the graph must be acyclic)"
                            f"{close_matches(name, list(shapes) + list(left_out))}", where, path)
        names.append(name)
    return names


def _from_loc(spec: LocDict, index: int) -> Loc | None:
    """Where ``from:``'s entry ``index`` is written (the key's place when it is one name)."""
    raw = spec.get("from")
    return raw.loc_of(index) if isinstance(raw, LocList) else spec.loc_of("from")


def _kept_inputs(reads: list[str], spec: LocDict, left_out: dict[str, list[str]], factory: BlockFactory,
                 path: str) -> list[str]:
    """The inputs of a node kept: a merge drops those left out by their `if:`; a one-input node, or a
    composite's named input, cannot."""
    for index, name in enumerate(reads):
        if name in left_out and factory.inputs:
            raise ArchError(f"'from' reads '{name}', which its 'if:' leaves out here, as the block's input "
                            f"'{factory.inputs[index]}': a named input cannot be dropped",
                            _from_loc(spec, index), path)
        if name in left_out and not factory.merges:
            raise ArchError(f"'from' reads '{name}', which its 'if:' leaves out here; only a merge (add, concat, mul) "
                            "drops an input that is left out (to pass its input on instead, give it "
                            "'repeat: 0' where it is off)", _from_loc(spec, index), path)
    names = [n for n in reads if n not in left_out]
    if not names:
        raise ArchError(f"every input in 'from' is left out here by its 'if:' ({', '.join(reads)})",
                        spec.loc_of("from"), path)
    return names


def _args(spec: LocDict, block: str, factory: BlockFactory, ctx: Planning, scope: Scope,
          path: str) -> dict[str, Binding]:
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


def _output(owner: LocDict | None, nodes: LocDict, shapes: dict, plans: list[NodePlan], prefix: str,
            left_out: dict[str, list[str]]) -> str:
    if owner is not None and "output" in owner:
        name = str(owner["output"])
        if name in left_out:
            raise ArchError(f"'output' names '{name}', which its 'if:' leaves out here", owner.loc_of("output"))
        if name not in shapes or name == "input":
            raise ArchError(f"'output' names '{name}', which is not a node{close_matches(name, list(nodes))}",
                            owner.loc_of("output"))
        return name
    main = [p for p in plans if p.aux is None]
    if not plans and left_out:
        raise ArchError("no node is left: every node's 'if:' is false here", nodes.loc)
    if not main:
        raise ArchError("every node is an auxiliary output; the main output must be a node without 'aux'",
                        nodes.loc)
    return main[-1].name[len(prefix):]


def _check_all_used(plans: list[NodePlan], nodes: LocDict, output: str, prefix: str,
                    left_out: dict[str, list[str]]) -> None:
    needed = needed_nodes(((p.name, p.inputs) for p in plans),
                          {prefix + output} | {p.name for p in plans if p.aux is not None})
    for plan in plans:
        if plan.name not in needed:
            local = plan.name[len(prefix):]
            readers = [n for n, reads in left_out.items() if local in reads]
            if readers:  # `if:` drops a node; `repeat: 0` would have passed its input on
                raise ArchError(f"node is not used here: the nodes that read it ({', '.join(readers)}) are left out by "
                                "their 'if:' (give it the same 'if:'; or, to pass its output on where they are off, "
                                "write 'repeat: 0' there instead of 'if:')", plan.loc, plan.name)
            raise ArchError("node is not used: no output depends on it (remove it, or read it with 'from')",
                            plan.loc, plan.name)
