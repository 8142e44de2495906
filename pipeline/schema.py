"""A JSON Schema (draft 2020-12) for architecture files, generated from the block registry.

Editors that speak the YAML language server (VS Code's YAML extension, Neovim's yamlls) use it
for completion, hover text and red squiggles while a file is typed. Everything about a block
comes from its class: the name it is registered under, its docstring, and its constructor's
type hints and defaults - the same source the loader checks arguments against - so a new block
appears here the moment it is registered.

The schema is deliberately permissive where the language is: a number may always be written as
an expression string (``out: 16*k``) and any argument as a ``$variable``; block names that are
not built in may be composites of the file. It flags what it can know without evaluating:
unknown keys, unknown arguments of a built-in block, words outside a block's choices, wrong
kinds of values.
"""
from __future__ import annotations

import inspect
import json
import re
import types
from typing import Any, Literal, Union, get_args, get_origin

from .blocks import BLOCKS
from .language.document import TOP_KEYS
from .language.init import INIT_SCHEMES
from .language.plan import COMPOSITE_KEYS, MAX_REPEAT, NAME, NODE_KEYS, RESERVED
from .language.values import type_hints

SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"
# ``$name`` or ``${expression}``: accepted wherever a value is (resolved later, by type)
REFERENCE = {"type": "string", "pattern": r"^\s*\$([A-Za-z_][A-Za-z0-9_]*|\{.*\})\s*$"}
EXPRESSION = {"type": "string", "description": "an arithmetic expression over variables, e.g. 16*k"}


def _value(tp: Any) -> dict:
    """The schema of one argument's value, from its type hint (mirrors ``language.values.resolve``)."""
    origin = get_origin(tp)
    if tp is Any:
        return {}
    if origin in (Union, types.UnionType):
        options = [_value(a) for a in get_args(tp) if a is not type(None)]
        if type(None) in get_args(tp):
            options.append({"type": "null"})
        return {"anyOf": options}
    if origin is Literal:
        return {"anyOf": [{"enum": list(get_args(tp))}, REFERENCE]}
    if origin in (list, tuple):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        array: dict = {"type": "array"}
        if origin is tuple and Ellipsis not in get_args(tp) and args:
            array.update(prefixItems=[_value(a) for a in args], minItems=len(args), maxItems=len(args))
        elif args:
            array["items"] = _value(args[0])
        return {"anyOf": [array, EXPRESSION]}  # a list variable or "[k, 2*k]"
    if tp is int:
        return {"anyOf": [{"type": "integer"}, EXPRESSION]}
    if tp is float:
        return {"anyOf": [{"type": "number"}, EXPRESSION]}
    if tp is bool:
        return {"anyOf": [{"type": "boolean"}, REFERENCE]}
    if tp is str:
        return {"type": "string"}
    if tp is dict or origin is dict:
        return {"anyOf": [{"type": "object"}, REFERENCE]}
    return {}  # a type the schema cannot express: anything, checked by the loader


def _docstring_args(cls: type) -> dict[str, str]:
    """Per-argument text from a Google-style ``Args:`` section of the class or its ``__init__``."""
    out: dict[str, str] = {}
    for doc in (inspect.getdoc(cls.__init__) or "", inspect.getdoc(cls) or ""):
        section = re.search(r"^Args:\n((?:[ \t]+.*\n?|\n)+)", doc, re.M)
        if not section:
            continue
        for match in re.finditer(r"^\s+(\w+)(?: \(.*?\))?: (.+(?:\n\s{8,}.+)*)", section.group(1), re.M):
            out.setdefault(match.group(1), " ".join(match.group(2).split()))
    return out


def _describe_type(tp: Any) -> str:
    from .language.values import _type_name  # the loader's own words for a type, in its messages

    return _type_name(tp)


def block_schema(name: str, cls: type) -> dict:
    """One built-in block: its node keys and arguments, with types, defaults and descriptions."""
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # self, in_shape
    hints = type_hints(cls.__init__)
    docs = _docstring_args(cls)
    properties: dict[str, dict] = {}
    required = []
    for p in params:
        if p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
            continue
        tp = hints.get(p.name, Any)
        prop = dict(_value(tp))
        text = docs.get(p.name) or _describe_type(tp)
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
            text += " (required)"
        else:
            default = p.default
            if default is None or isinstance(default, (bool, int, float, str)):
                prop["default"] = default
            text += f" (default: {'auto' if default is None else default})"
        prop["description"] = text
        properties[p.name] = prop
    summary = (inspect.getdoc(cls) or name).strip()
    description = f"{name}: {summary}"
    if required:
        description += "\nrequired arguments: " + ", ".join(required)
    if getattr(cls, "merges", False):
        description += "\nmerges the nodes named in 'from: [a, b, ...]'"
    return {
        "type": "object",
        "description": description,
        # arguments only: a missing required one may come from the file's `defaults:`
        "properties": {**properties, **{k: {} for k in NODE_KEYS}},
        "additionalProperties": False,
    }


def generate(blocks: dict[str, type] | None = None) -> dict:
    """The schema for the blocks registered now (``BLOCKS`` unless given)."""
    blocks = dict(BLOCKS if blocks is None else blocks)
    names = sorted(blocks)
    integer = {"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_REPEAT}, EXPRESSION]}
    node_name = {"type": "string", "pattern": NAME.pattern, "not": {"enum": sorted(RESERVED)}}
    node_ref = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    node_keys = {
        "block": {"description": "the block type: a built-in block, a block of this file's 'blocks:', or $variable",
                  "anyOf": [{"enum": names}, {"type": "string"}]},
        "from": {"description": "the input node(s): a name, 'input', or a list of names for merging blocks",
                 "anyOf": [node_ref, {"type": "array", "items": node_ref, "minItems": 1}]},
        "repeat": {"description": "stack the block N times (copies NAME.0, NAME.1, ...; 'i' is the copy's index)",
                   **integer},
        "aux": {"description": "marks an auxiliary output with this loss weight (top-level nodes only)",
                "anyOf": [{"type": "number", "exclusiveMinimum": 0}, EXPRESSION]},
    }
    node_keys.update({k: {} for k in NODE_KEYS if k not in node_keys})  # a key added to the language: any value
    dispatch = [
        {"if": {"properties": {"block": {"const": name}}, "required": ["block"]},
         "then": {"$ref": f"#/$defs/blocks/{name}"}}
        for name in names
    ]
    node = {
        "description": "a node: {block: TYPE, ...arguments}, or just the block type (shorthand)",
        "anyOf": [
            {"type": "string", "description": "shorthand for {block: TYPE}"},
            {"type": "object", "required": ["block"], "properties": node_keys, "allOf": dispatch},
        ],
    }
    nodes = {"type": "object", "minProperties": 1, "propertyNames": node_name,
             "description": "the graph: node name -> node, in order; a node's input is the previous node",
             "additionalProperties": {"$ref": "#/$defs/node"}}
    inner_nodes = {**nodes, "additionalProperties": {  # 'aux' is for the model's top-level nodes only
        "allOf": [{"$ref": "#/$defs/node"}, {"not": {"type": "object", "required": ["aux"]}}]}}
    composite = {
        "type": "object",
        "description": "a block written in YAML: parameters plus a sub-graph whose 'input' is the block's input",
        "required": ["nodes"],
        "properties": {
            "description": {"type": "string"},
            "params": {"type": "object", "description": "parameter: default (null = required)",
                       "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"}},
            "nodes": {"$ref": "#/$defs/inner_nodes"},
            "output": {"type": "string", "description": "the node whose output is the block's output"},
        },
        "additionalProperties": False,
    }
    composite["properties"].update({k: {} for k in COMPOSITE_KEYS if k not in composite["properties"]})
    top = {
        "name": {"type": "string", "description": "the network's name (default: the file name)"},
        "description": {"type": "string"},
        "extends": {"type": "string", "description": "a base file (path relative to this one) that this file overrides"},
        "input": {"description": "the input shape without the batch: [C, H, W], or [C, L] for 1-D signals",
                  "anyOf": [{"type": "array", "minItems": 1, "maxItems": 4,
                             "items": {"anyOf": [{"type": "integer", "exclusiveMinimum": 0}, EXPRESSION]}},
                            REFERENCE]},
        "vars": {"type": "object", "description": "variables used in expressions and as $name",
                 "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$", "not": {"const": "i"}}},
        "defaults": {"type": "object", "description": "block type -> arguments applied to every node of that block",
                     "properties": {n: {"$ref": f"#/$defs/blocks/{n}"} for n in names},
                     "additionalProperties": {"type": "object"}},
        "blocks": {"type": "object", "description": "composite blocks defined in YAML, usable as block types",
                   "propertyNames": {"allOf": [{"pattern": NAME.pattern}, {"not": {"enum": names}}]},
                   "additionalProperties": {"$ref": "#/$defs/composite"}},
        "nodes": {"$ref": "#/$defs/nodes", "description": "the network: node name -> node, in order"},
        "output": {"type": "string", "description": "the output node (default: the last non-auxiliary node)"},
        "init": {"description": "weight initialisation scheme",
                 "anyOf": [{"enum": sorted(INIT_SCHEMES)}, REFERENCE], "default": "default"},
        "norm_momentum": {"description": "momentum of every batch norm's running statistics (null: PyTorch's 0.1)",
                          "anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 1}, {"type": "null"},
                                    EXPRESSION], "default": None},
    }
    top.update({k: {} for k in TOP_KEYS if k not in top})
    return {
        "$schema": SCHEMA_URL,
        "$id": "https://yamlcnn.invalid/architecture.schema.json",
        "title": "yamlcnn architecture file",
        "description": "A CNN as a YAML graph of blocks (generated by `python -m pipeline schema`).",
        "type": "object",
        "properties": top,
        "additionalProperties": False,
        # a file that extends another may take its input and nodes from there
        "if": {"not": {"required": ["extends"]}},
        "then": {"required": ["input", "nodes"]},
        "$defs": {
            "node": node,
            "nodes": nodes,
            "inner_nodes": inner_nodes,
            "composite": composite,
            "blocks": {name: block_schema(name, blocks[name]) for name in names},
        },
    }


def dump(blocks: dict[str, type] | None = None) -> str:
    """The schema as the text of ``architectures/schema.json`` (stable key order, final newline)."""
    return json.dumps(generate(blocks), indent=1) + "\n"
