"""A JSON Schema (draft 2020-12) for architecture files, generated from the block registry.

Editors that speak the YAML language server (VS Code's YAML extension, Neovim's yamlls) use it
for completion, hover text and red squiggles while a file is typed. Everything about a block
comes from its class, through ``reference.block_rows`` (the README's block reference): the name
it is registered under, its docstring's summary and ``Args:``, and its constructor's type hints,
defaults and bounds (``blocks.ranges``) - so a new block appears here the moment it is registered.

One schema serves every file, so what depends on the file itself is written as conditions on it:
block names are limited to the registered ones (and ``$variables``) unless the file defines
composites (``blocks:``) or extends another file, whose names the schema cannot know; a block's
required arguments are required unless ``defaults:`` (or a base file) may supply them. A number
may always be written as an expression string (``out: 16*k``), so bounds apply to literal numbers.

Rules whose standard message would be vague carry an ``errorMessage`` (read by the YAML language
server and VS Code; ajv reads it with ajv-errors; other validators ignore it as an annotation).
"""
from __future__ import annotations

import json
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from .blocks import BLOCKS
from .blocks.ranges import Range
from .language.document import TOP_KEYS
from .language.expr import MAX_MAGNITUDE
from .language.init import INIT_SCHEMES
from .language.plan import ALL_BLOCKS, COMPOSITE_KEYS, MAX_REPEAT, NAME, NODE_KEYS, RESERVED
from .reference import argument_hints, block_rows

SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"
VARIABLE = r"^\s*\$([A-Za-z_][A-Za-z0-9_]*|\{.*\})\s*$"  # ``$name`` or ``${expression}``, resolved later
# accepted wherever a value is (resolved later, by type)
REFERENCE = {"type": "string", "pattern": VARIABLE}
EXPRESSION = {"type": "string", "description": "an arithmetic expression over variables, e.g. 16*k"}
# yes/no/on/off are booleans to PyYAML (YAML 1.1) and words to editors (YAML 1.2): the loader refuses them
CONDITION = {"type": "string", "pattern": r"^(?!\s*(yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF)\s*$)",
             "description": "a condition over variables, e.g. stride == 1 and in_channels == out"}
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


def _bound(schema: dict, bound: Range) -> dict:
    keys = {"minimum": bound.minimum, "maximum": bound.maximum}
    for side, value in keys.items():
        if value is not None:
            exclusive = bound.exclusive_minimum if side == "minimum" else bound.exclusive_maximum
            if exclusive:
                schema.pop(side, None)
            schema["exclusive" + side.title() if exclusive else side] = value
    return schema


def _value(tp: Any) -> dict:
    """The schema of one argument's value, from its type hint (mirrors ``language.values.resolve``)."""
    origin = get_origin(tp)
    if origin is Annotated:
        inner = _value(get_args(tp)[0])
        for bound in (m for m in tp.__metadata__ if isinstance(m, Range)):
            _bound(inner["anyOf"][0], bound)  # numbers are {"anyOf": [number, expression]}
        return inner
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
            array.update(prefixItems=[_value(a) for a in args], minItems=len(args), items=False)
        elif args:
            array["items"] = _value(args[0])
        return {"anyOf": [array, EXPRESSION]}  # a list variable or "[k, 2*k]"
    if tp in (int, float):  # the loader refuses any number beyond MAX_MAGNITUDE
        number = {"type": "integer" if tp is int else "number", "minimum": -MAX_MAGNITUDE, "maximum": MAX_MAGNITUDE}
        return {"anyOf": [number, EXPRESSION]}
    if tp is bool:
        return {"anyOf": [{"type": "boolean"}, CONDITION]}
    if tp is str:
        return {"type": "string"}
    if tp is dict or origin is dict:
        return {"anyOf": [{"type": "object"}, REFERENCE]}
    return {}  # a type the schema cannot express: anything, checked by the loader


def _has(key: str) -> dict:
    """The condition "the object has ``key``" (ajv's strict mode wants the key among the properties)."""
    return {"type": "object", "properties": {key: True}, "required": [key]}


def _on_objects(rule: dict, message: str) -> dict:
    """``rule`` for mappings only, with its own message (so a value of the wrong type is not given it)."""
    return {"if": {"type": "object"}, "then": {"type": "object", **rule, "errorMessage": message}}


def block_schema(name: str, cls: type, summary: str, args: list) -> dict:
    """One built-in block as a node: its arguments with types, bounds, defaults and meanings."""
    hints = argument_hints(cls)
    properties: dict[str, Any] = {
        "block": {"const": name, "description": f"{name}: {summary}"},
        **{k: True for k in NODE_KEYS if k != "block"},
    }
    for arg, type_text, default, meaning in args:
        prop = _value(hints[arg])
        text = f"{meaning} ({type_text}; {'required' if default == 'required' else 'default ' + default})"
        prop["description"] = text
        value = cls.__init__.__kwdefaults__.get(arg) if cls.__init__.__kwdefaults__ else None
        if default != "required" and (value is None or isinstance(value, (bool, int, float, str))):
            prop["default"] = value
        properties[arg] = prop
    required = [arg for arg, _, default, _ in args if default == "required"]
    description = f"{name}: {summary}"
    if required:
        description += "\nrequired arguments: " + ", ".join(required)
    schema = {"type": "object", "description": description, "properties": properties, "additionalProperties": False}
    if getattr(cls, "merges", False):
        schema["allOf"] = [_on_objects({"properties": {"repeat": False}},
                                       f"block '{name}' merges inputs and cannot be repeated")]
    else:
        properties["from"] = {"if": {"type": "array"}, "then": {
            "type": "array", "maxItems": 1, "errorMessage": f"block '{name}' takes one input: 'from' names one node"}}
    return schema


def _block_name(names: list[str]) -> dict:
    """A block type in a file without composites: a registered name, or a $variable (checked later)."""
    return {"type": "string", "if": {"type": "string", "pattern": VARIABLE}, "else": {"enum": names}}


def _requirements(name: str, required: list[str]) -> dict:
    """A root-level rule: nodes of ``name`` give its required arguments, unless defaults may give them."""
    node = {"if": {"anyOf": [{"type": "string", "const": name},
                             {"type": "object", "properties": {"block": {"const": name}}, "required": ["block"]}]},
            "then": {"allOf": [{"type": "object", "properties": {a: True}, "required": [a],
                                "errorMessage": f"block '{name}' needs argument '{a}'"} for a in required]}}
    every_node = {"type": "object", "additionalProperties": node}
    supplied = {"type": "object", "anyOf": [_has(name), _has(ALL_BLOCKS)]}
    return {
        "if": {"type": "object", "anyOf": [_has("extends"),
                                           {"properties": {"defaults": supplied}, "required": ["defaults"]}]},
        "else": {"properties": {"nodes": every_node, "blocks": {"type": "object", "additionalProperties": {
            "type": "object", "properties": {"nodes": every_node}}}}},
    }


def generate(blocks: dict[str, type] | None = None) -> dict:
    """The schema for the blocks registered now (``BLOCKS`` unless given)."""
    blocks = dict(BLOCKS if blocks is None else blocks)
    rows = {name: (summary, args) for name, summary, args in block_rows(blocks)}
    names = sorted(blocks)
    integer = {"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_REPEAT}, EXPRESSION]}
    node_ref = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    node_keys = {
        # no description here: hover on a block type then shows that block's summary ($defs/blocks)
        "block": {"type": "string"},
        "from": {"description": "the input node(s): a name, 'input', or a list of names for merging blocks",
                 "anyOf": [node_ref, {"type": "array", "items": node_ref, "minItems": 1}]},
        "repeat": {"description": "stack the block N times (copies NAME.0, NAME.1, ...; 'i' is the copy's index)",
                   **integer},
        "aux": {"description": "marks an auxiliary output with this loss weight (top-level nodes only)",
                "anyOf": [{"type": "number", "exclusiveMinimum": 0}, EXPRESSION]},
        "if": {"description": "keep the node only where this condition holds; left out, later nodes chain past it "
                              "and a merge drops it from its inputs",
               "anyOf": [{"type": "boolean"}, CONDITION]},
    }
    node_keys.update({k: True for k in NODE_KEYS if k not in node_keys})  # a key added to the language: any value
    dispatch = [
        {"if": {"properties": {"block": {"const": name}}, "required": ["block"]},
         "then": {"$ref": f"#/$defs/blocks/{name}"}}
        for name in names
    ]
    # if/else rather than anyOf: an editor then reports the mapping's own mistake ("Missing property
    # "block"") instead of guessing that a string was meant
    node = {
        "description": "a node: {block: TYPE, ...arguments}, or just the block type (shorthand); TYPE is a "
                       "built-in block, a block of this file's 'blocks:', or a $variable",
        "if": {"type": "object"},
        "then": {"type": "object", "required": ["block"], "properties": node_keys, "allOf": dispatch},
        "else": {"type": "string"},
    }
    # a file whose block names are all known here: a misspelt type is an error, not a composite
    known_node = {"if": {"type": "string"}, "then": _block_name(names),
                  "else": {"type": "object", "properties": {"block": _block_name(names)}}}
    reserved = _on_objects({"properties": {n: False for n in sorted(RESERVED)}},
                           "reserved node name: nodes become attributes of the network, so a node cannot be "
                           "called 'input' or take the name of one of its methods or attributes ("
                           + ", ".join(n for n in ("forward", "training", "eval", "to", "parameters") if n in RESERVED)
                           + ", ...); rename the node")
    nodes = {"type": "object", "minProperties": 1, "allOf": [{"$ref": "#/$defs/reserved"}],
             "propertyNames": {"type": "string", "pattern": NAME.pattern,
                               "errorMessage": "a node name is letters, digits and _, starting with a letter or digit"},
             "description": "the graph: node name -> node, in order; a node's input is the previous node",
             "additionalProperties": {"$ref": "#/$defs/node"}}
    no_aux = _on_objects({"properties": {"aux": False}},
                         "'aux' marks an auxiliary output of the model: a node inside a composite block cannot have "
                         "it; put 'aux' on the top-level node that uses the block")
    inner_nodes = {**nodes, "additionalProperties": {"allOf": [{"$ref": "#/$defs/node"}, no_aux]}}
    composite = {
        "type": "object",
        "description": "a block written in YAML: parameters plus a sub-graph whose 'input' is the block's input",
        "required": ["nodes"],
        "properties": {
            "description": {"type": "string"},
            "params": {"type": "object", "description": "parameter: default (null = required)",
                       "propertyNames": {"type": "string", "pattern": IDENTIFIER}},
            "nodes": {"$ref": "#/$defs/inner_nodes"},
            "inputs": {"type": "array", "minItems": 2,
                       "items": {"type": "string", "pattern": NAME.pattern},
                       "description": "names of two or more inputs, read like nodes (the first is also 'input'); "
                                      "a node using the block gives them in 'from: [a, b]', in this order"},
            "output": {"type": "string", "description": "the node whose output is the block's output"},
        },
        "additionalProperties": False,
    }
    composite["properties"].update({k: True for k in COMPOSITE_KEYS if k not in composite["properties"]})
    # the message sits beside the $ref, not with it: editors merge a $ref's siblings into the target
    defaults_entry = {name: {"allOf": [{"$ref": f"#/$defs/blocks/{name}"}, _on_objects(
        {"properties": {k: False for k in NODE_KEYS}},
        f"'defaults:' holds arguments of '{name}'; node keys ({', '.join(NODE_KEYS)}) go on nodes")]}
        for name in names}
    top = {
        "name": {"type": "string", "description": "the network's name (default: the file name)"},
        "description": {"type": "string"},
        "extends": {"type": "string",
                    "description": "a base file (path relative to this one) that this file overrides"},
        "input": {"description": "the input shape without the batch: [C, H, W], or [C, L] for 1-D signals",
                  "anyOf": [{"type": "array", "minItems": 1, "maxItems": 4,
                             "items": {"anyOf": [{"type": "integer", "exclusiveMinimum": 0}, EXPRESSION]}},
                            EXPRESSION]},  # a list variable: `input: shape`
        "vars": {"type": "object", "description": "variables used in expressions and as $name",
                 "propertyNames": {"type": "string", "pattern": r"^(?!i$)[A-Za-z_][A-Za-z0-9_]*$",
                                   "errorMessage": "a variable name is a letter or _, then letters, digits or _; "
                                                   "'i' is reserved for the copy index of 'repeat'"}},
        "defaults": {"type": "object",
                     "description": "block type -> arguments applied to every node of that block ('*': to every "
                                    "block that has the argument); node keys (from, repeat, aux, if) are not arguments",
                     "properties": defaults_entry, "additionalProperties": {"type": "object"}},
        "blocks": {"type": "object", "description": "composite blocks defined in YAML, usable as block types",
                   "allOf": [_on_objects({"properties": {n: False for n in names}},
                                         "a composite block cannot take the name of a built-in block")],
                   "propertyNames": {"type": "string", "pattern": NAME.pattern},
                   "additionalProperties": {"$ref": "#/$defs/composite"}},
        "nodes": {"$ref": "#/$defs/nodes", "description": "the network: node name -> node, in order"},
        "output": {"type": "string", "description": "the output node (default: the last non-auxiliary node)"},
        "init": {"description": "weight initialisation scheme",
                 "anyOf": [{"enum": sorted(INIT_SCHEMES)}, REFERENCE], "default": "default"},
        "norm_momentum": {"description": "momentum of every batch norm's running statistics (null: PyTorch's 0.1)",
                          "anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 1}, {"type": "null"},
                                    EXPRESSION], "default": None},
    }
    top.update({k: True for k in TOP_KEYS if k not in top})
    open_names = {"type": "object", "anyOf": [_has("blocks"), _has("extends")]}
    strict_names = {"properties": {
        "nodes": {"type": "object", "additionalProperties": known_node},
        "defaults": {"type": "object", "propertyNames": {"enum": [*names, ALL_BLOCKS]}},
    }}
    requirements = [_requirements(name, [a for a, _, d, _ in rows[name][1] if d == "required"])
                    for name in names if any(d == "required" for _, _, d, _ in rows[name][1])]
    return {
        "$schema": SCHEMA_URL,
        "$id": "https://yamlcnn.invalid/architecture.schema.json",
        "title": "yamlcnn architecture file",
        "description": "A CNN as a YAML graph of blocks (generated by `python -m pipeline schema`).",
        "type": "object",
        "properties": top,
        "additionalProperties": False,
        "allOf": [
            # a file that extends another may take its input and nodes from there
            {"if": _has("extends"), "else": {"properties": {"input": True, "nodes": True},
                                             "required": ["input", "nodes"]}},
            {"if": open_names, "else": strict_names},
            *requirements,
        ],
        "$defs": {
            "node": node,
            "nodes": nodes,
            "inner_nodes": inner_nodes,
            "reserved": reserved,
            "composite": composite,
            "blocks": {name: block_schema(name, blocks[name], *rows[name]) for name in names},
        },
    }


def dump(blocks: dict[str, type] | None = None) -> str:
    """The schema as the text of ``architectures/schema.json`` (stable key order, final newline)."""
    return json.dumps(generate(blocks), indent=1) + "\n"
