"""Architecture file -> validated plan: every node's shape, parameters and MACs, no weights.

``plan_model`` reads a file (following ``extends:``) and validates its sections (variables, block
definitions, defaults, input), then plans its nodes (``nodes.plan_graph``: validate, expand and
measure each node), then checks the settings of the whole net. Every block is first constructed on
the weightless ``meta`` device to measure its output shape, parameters and MACs, so every mistake,
and every shape, is known before one weight is allocated (and a file asking for 10^12 parameters is
refused, not killed by the OOM killer). Every block is treated alike through its factory
(``plans.BlockFactory``): a Python block class, or a composite block written in YAML.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from ..blocks import BLOCKS
from ..errors import ArchError, Loc
from .document import _plain, load_document
from .expr import BOOLEANS
from .factories import COMPOSITE_KEYS, INPUT_NAMES, CompositeBlock
from .factories import python_block as _python_block  # noqa: F401 (reference.py reads block arguments here)
from .init import INIT_SCHEMES
from .loader import LocDict
from .names import suggest_block
from .nodes import ALL_BLOCKS, MAX_REPEAT, NAME, NODE_KEYS, RESERVED, Planning, plan_graph
from .plans import GraphPlan, ModelPlan, NodePlan, Shape
from .values import Binding, Scope, close_matches, describe, plain_text, resolve

# with the language's words and limits, which the JSON Schema (schema.py) reads from here
__all__ = ["ALL_BLOCKS", "COMPOSITE_KEYS", "GraphPlan", "MAX_REPEAT", "ModelPlan", "NAME", "NODE_KEYS", "NodePlan",
           "RESERVED", "plan_model"]


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
    file_scope, raw_vars = _variables(doc, var_overrides)
    composites = _composites(doc)
    defaults = _defaults(doc, composites)
    shape, file_input = _input(doc, file_scope, input_shape)
    # the model's input, readable like a composite block's (`crop: {left: "in_shape[1] - 1"}` keeps the last step)
    file_scope.bindings.update({"in_channels": Binding(shape[0], file_scope, doc.loc_of("input")),
                                "in_shape": Binding(list(shape), file_scope, doc.loc_of("input"))})
    if "nodes" not in doc:
        raise ArchError("the file needs 'nodes': a mapping of node name to node", doc.loc)
    if not isinstance(doc["nodes"], dict) or not doc["nodes"]:
        raise ArchError(f"'nodes' must be a mapping of node name to node, got {describe(doc['nodes'])}",
                        doc.loc_of("nodes"))

    graph = plan_graph(doc["nodes"], shape, file_scope, Planning(file_scope, composites, defaults, device), "", doc)

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


def _variables(doc: LocDict, overrides: dict[str, Any]) -> tuple[Scope, LocDict]:
    """The file's scope (its ``vars:``, with the caller's overrides), and the ``vars:`` as written."""
    file_scope = Scope()
    raw_vars = doc.get("vars") or LocDict()
    if not isinstance(raw_vars, dict):
        raise ArchError("'vars' must be a mapping of name: value", doc.loc_of("vars"))
    for name, raw in raw_vars.items():
        if not isinstance(name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name) or name == "i":
            raise ArchError(f"variable name '{name}' must be an identifier (and not 'i', the repeat index)",
                            raw_vars.key_loc(name))
        if name in BOOLEANS:  # expressions read these words as the booleans
            raise ArchError(f"variable name '{name}' is reserved: in expressions it is the boolean",
                            raw_vars.key_loc(name))
        if name in INPUT_NAMES:
            raise ArchError(f"variable name '{name}' is reserved: it is the model's input "
                            f"{'channels' if name == 'in_channels' else 'shape'} (from 'input:')",
                            raw_vars.key_loc(name))
        file_scope.bindings[name] = Binding(raw, file_scope, raw_vars.loc_of(name))
    for name, raw in overrides.items():
        if name not in raw_vars:
            raise ArchError(f"cannot override variable '{name}': the file does not define it"
                            f"{close_matches(name, list(raw_vars))}", doc.loc_of("vars") if raw_vars else doc.loc)
        file_scope.bindings[name] = Binding(_plain(raw), file_scope, raw_vars.loc_of(name))
    return file_scope, raw_vars


def _composites(doc: LocDict) -> dict[str, CompositeBlock]:
    """The file's own blocks (``blocks:``), each checked as a definition; their bodies are planned where used."""
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
    return composites


def _defaults(doc: LocDict, composites: dict[str, CompositeBlock]) -> LocDict:
    defaults = doc.get("defaults") or LocDict()
    if not isinstance(defaults, dict) or not all(isinstance(v, dict) for v in defaults.values()):
        raise ArchError("'defaults' must map block names to argument mappings", doc.loc_of("defaults"))
    for name, entry in defaults.items():
        if name not in BLOCKS and name not in composites and name != ALL_BLOCKS:
            raise ArchError(f"defaults: unknown block '{name}'{suggest_block(name, list(BLOCKS) + list(composites))}",
                            defaults.key_loc(name))
        for key in entry:  # `"*"` skips arguments a block lacks: say so here, or `"*": {if: false}` does nothing
            if key in NODE_KEYS:
                raise ArchError(f"defaults: '{key}' is a node key, not an argument of '{name}'; node keys "
                                f"({', '.join(NODE_KEYS)}) go on nodes", entry.key_loc(key))
    return defaults


def _input(doc: LocDict, scope: Scope, override: tuple[int, ...] | None) -> tuple[Shape, tuple[int, ...] | None]:
    """The input shape to plan for, and the file's own (they differ under an override)."""
    if "input" not in doc and override is None:
        raise ArchError("the file needs 'input': the input shape [C, H, W] (or [C, L])", doc.loc)
    raw_input = list(override) if override is not None else doc["input"]
    shape = tuple(resolve(raw_input, list[int], scope, doc.loc_of("input"), "'input'"))
    if not 1 <= len(shape) <= 4 or any(d <= 0 for d in shape):
        raise ArchError(f"'input' must be 1 to 4 positive sizes like [3, 224, 224], got {list(shape)}",
                        doc.loc_of("input"))
    return shape, shape if override is None else _file_input(doc, scope)


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
        return plain_text(resolve(binding.raw, Any, scope, binding.loc, name, numeric=True))
    except ArchError:
        return binding.raw
