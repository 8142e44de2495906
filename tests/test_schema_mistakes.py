"""The editor catches what the checker catches: the JSON Schema against a corpus of mistakes.

Each mistake below is one a user makes in a single node or key (misspelt block, missing required
argument, a value out of its block's range, node keys in ``defaults:``, reserved names, ``aux:`` in a
composite); the planner rejects each, and so must the schema. The other way round, every file the
planner accepts (the zoo in test_schema.py, the files below, every boundary value of every bounded
argument) the schema accepts, so an editor never underlines a working file. Mistakes that need
shapes, variables or the file's own composites are the checker's alone (README, "Editor completion").
"""
from __future__ import annotations

import inspect
import itertools
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from pipeline import ArchError, plan_model
from pipeline.blocks import BLOCKS
from pipeline.reference import argument_hints, bounds, type_text
from pipeline.schema import generate

ROOT = Path(__file__).resolve().parents[1]
HEAD = "input: [4, 16, 16]\nnodes:\n"

MISTAKES = {  # id: the file's nodes (indented), or the whole file
    "misspelt_block": "  c: {block: covn, out: 8}",
    "misspelt_shorthand": "  c: {block: conv, out: 8}\n  p: global_pol",
    "misspelt_block_with_args": "  c: {block: cnov, out: 8, kernal: 3}",
    "defaults_unknown_block": "input: [4, 16, 16]\ndefaults: {covn: {act: relu}}\nnodes:\n  c: {block: conv, out: 8}",
    "conv_without_out": "  c: {block: conv, kernel: 3}",
    "conv_shorthand_needs_out": "  c: conv",
    "linear_without_out": "  p: global_pool\n  f: {block: linear}",
    "dense_without_growth": "  d: {block: dense, layers: 2}",
    "inception_without_b4": "  i: {block: inception, b1: 8, b2: [4, 8], b3: [4, 8]}",
    "maxpool_without_kernel": "  p: {block: maxpool, stride: 2}",
    "defaults_for_another_block": "input: [4, 16, 16]\ndefaults: {linear: {out: 4}}\nnodes:\n  c: {block: conv}",
    "dropout_1.5": "  d: {block: dropout, p: 1.5}",
    "dropout_1": "  d: {block: dropout, p: 1}",
    "negative_channels": "  c: {block: conv, out: -8}",
    "zero_channels": "  c: {block: conv, out: 0}",
    "zero_stride": "  c: {block: conv, out: 8, stride: 0}",
    "zero_kernel_side": "  c: {block: conv, out: 8, kernel: [3, 0]}",
    "negative_padding": "  c: {block: conv, out: 8, padding: -1}",
    "drop_path_1.2": "  r: {block: basic, out: 4, drop_path: 1.2}",
    "negative_dropout": "  r: {block: wide, out: 4, dropout: -0.1}",
    "zero_eps": "  n: {block: norm, eps: 0}",
    "zero_growth": "  d: {block: dense, layers: 2, growth: 0}",
    "zero_inception_branch": "  i: {block: inception, b1: 8, b2: [0, 8], b3: [4, 8], b4: 8}",
    "se_beyond_64": "  b: {block: inverted, out: 4, se: 100}",
    "zero_lrn_size": "  l: {block: lrn, size: 0}",
    "zero_pool_stride": "  p: {block: avgpool, kernel: 2, stride: 0}",
    "fraction_for_channels": "  c: {block: conv, out: 2.5}",
    "unknown_norm": "  c: {block: conv, out: 8, norm: batchnorm}",
    "unknown_argument": "  c: {block: conv, out: 8, kernal: 3}",
    "huge_channels": "  c: {block: conv, out: 100000000000000000000}",
    "negative_repeat": "  c: {block: conv, out: 8, repeat: -1}",
    "defaults_repeat": "input: [4, 16, 16]\ndefaults: {conv: {repeat: 2}}\nnodes:\n  c: {block: conv, out: 8}",
    "defaults_from": "input: [4, 16, 16]\ndefaults: {conv: {from: input}}\nnodes:\n  c: {block: conv, out: 8}",
    "defaults_aux": "input: [4, 16, 16]\ndefaults: {linear: {aux: 0.3}}\nnodes:\n  p: global_pool\n"
                    "  f: {block: linear, out: 4}",
    "defaults_block": "input: [4, 16, 16]\ndefaults: {conv: {block: linear}}\nnodes:\n  c: {block: conv, out: 8}",
    "one_named_input": "input: [4, 16, 16]\nblocks:\n  root:\n    inputs: [x]\n    nodes: {c: {block: conv, out: 4}}\n"
                       "nodes:\n  r: root",
    "defaults_if": "input: [4, 16, 16]\ndefaults: {conv: {if: false}}\nnodes:\n  c: {block: conv, out: 8}",
    "if_a_number": "  c: {block: conv, out: 8}\n  d: {block: conv, out: 8, if: 1}",
    # an editor (YAML 1.2) reads `bias: yes` as this text; the loader refuses the unquoted word (YAML 1.1)
    "yaml11_boolean": "  c: {block: conv, out: 8, bias: 'yes'}",
    "yaml11_boolean_if": "  c: {block: conv, out: 8}\n  d: {block: conv, out: 8, if: 'off'}",
    "node_named_forward": "  forward: {block: conv, out: 8}",
    "node_named_input": "  input: {block: conv, out: 8}",
    "node_named_training": "  c: {block: conv, out: 8}\n  training: {block: act}",
    "aux_inside_composite": "input: [4, 16, 16]\nblocks:\n  unit:\n    nodes:\n"
                            "      c: {block: conv, out: 8, aux: 0.3}\n"
                            "nodes:\n  u: unit",
    "conv_with_two_inputs": "  a: {block: conv, out: 8}\n  b: {block: conv, out: 8, from: [a, input]}",
    "repeated_add": "  a: {block: conv, out: 4}\n  b: {block: add, from: [a, input], repeat: 2}",
    "composite_named_conv": "input: [4, 16, 16]\nblocks:\n  conv:\n    nodes: {c: {block: act}}\nnodes:\n  u: act",
}

ACCEPTED = {  # files the planner accepts, written the ways the schema must not refuse
    "defaults_supply_out": "input: [4, 16, 16]\ndefaults: {conv: {out: 8}}\nnodes:\n  c: conv\n  d: {block: conv}",
    "star_defaults_supply_out": "input: [4, 16, 16]\ndefaults: {'*': {out: 8}}\nnodes:\n  c: {block: conv}",
    "variable_block": "input: [4, 16, 16]\nvars: {unit: basic, k: 2}\nnodes:\n  r: {block: $unit, out: 4*k}",
    "composite_names": "input: [4, 16, 16]\nblocks:\n  unit:\n    params: {w: null}\n    nodes:\n"
                       "      c: {block: conv, out: w}\n      d: {block: cnv2, w: w}\n  cnv2:\n    params: {w: null}\n"
                       "    nodes: {c: {block: conv, out: w}}\nnodes:\n  u: {block: unit, w: 8}\n  p: global_pool\n"
                       "  aux1: {block: linear, out: 3, aux: 0.3, from: p}\n  f: {block: linear, out: 4, from: p}",
    "expressions": "input: [4, 16, 16]\nvars: {k: 2}\nnodes:\n  c: {block: conv, out: 4*k, stride: 2 - 1}\n"
                   "  d: {block: dropout, p: '0.1 * k'}",
    "input_variable": "vars: {shape: [4, 8, 8]}\ninput: shape\nnodes:\n  a: {block: conv, out: 4}",
    "conditions": "input: [4, 16, 16]\nvars: {se: false, act: relu}\nnodes:\n  c: {block: conv, out: 8, bias: 'act == \"relu\"'}\n"
                  "  s: {block: se, if: se}\n  d: {block: conv, out: in_channels * 2, act: \"${act if se else 'gelu'}\"}\n"
                  "  e: {block: conv, out: 8, if: true}\n  f: {block: add, from: [d, e]}",
    "named_inputs": "input: [4, 16, 16]\nblocks:\n  root:\n    inputs: [x, skip]\n    nodes:\n"
                    "      cat: {block: concat, from: [x, skip]}\nnodes:\n  a: {block: conv, out: 4}\n"
                    "  r: {block: root, from: [a, input]}\n  s: {block: conv, out: 8, from: \"${'r' if true else 'a'}\"}",
    "boundaries": "input: [4, 16, 16]\nnodes:\n  c: {block: conv, out: 1, stride: 1, padding: 0, groups: 1}\n"
                  "  d: {block: dropout, p: 0}\n  r: {block: basic, out: 4, se: 64, dropout: 0.99, drop_path: 0}",
}


def _doc(text: str) -> dict:
    return yaml.safe_load(HEAD + text if text.startswith("  ") else text)


@pytest.fixture(scope="module")
def validator():
    return jsonschema.Draft202012Validator(generate())


@pytest.mark.parametrize("name", MISTAKES)
def test_the_schema_rejects_what_the_planner_rejects(name, validator):
    doc = _doc(MISTAKES[name])
    with pytest.raises(ArchError):
        plan_model(doc)
    assert not validator.is_valid(doc), f"{name}: the schema accepts a mistake the planner rejects"


@pytest.mark.parametrize("name", ACCEPTED)
def test_the_schema_accepts_what_the_planner_accepts(name, validator):
    doc = _doc(ACCEPTED[name])
    plan_model(doc)
    errors = list(validator.iter_errors(doc))
    assert not errors, f"{name}: {errors[0].message}"


def test_a_child_may_take_required_arguments_from_its_base(tmp_path, validator):
    (tmp_path / "base.yaml").write_text("input: [4, 16, 16]\ndefaults: {conv: {out: 8}}\nnodes:\n  c: conv\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nnodes:\n  c: conv\n  d: {block: conv, stride: 2}\n")
    plan_model(tmp_path / "child.yaml")
    assert validator.is_valid(yaml.safe_load((tmp_path / "child.yaml").read_text()))


def _planned(doc) -> bool:
    try:
        plan_model(doc)
    except ArchError:
        return False
    return True


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_every_bound_of_a_block_is_the_planners(name, validator):
    """The bounds in a block's type hints are enforced by the block: just past one, the planner and
    the schema both refuse; at it, a file the planner accepts the schema accepts."""
    cls = BLOCKS[name]
    hints = argument_hints(cls)
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]
    bounded = {p.name: bounds(hints[p.name])[0] for p in params if len(bounds(hints[p.name])) == 1}
    if not bounded:
        return
    fill = {"int": (8, 1, 0), "[int, int]": ([4, 4],)}  # values to try for a required argument, by type
    options = [fill.get(type_text(hints[p.name]).split(" or ")[0].split(", >")[0])
               for p in params if p.default is inspect.Parameter.empty]
    required = [p.name for p in params if p.default is inspect.Parameter.empty]
    assert None not in options, f"{name}: no test value for {required}"

    def first_planned(extra: dict) -> tuple[list, dict] | None:
        for values in itertools.product(*options):
            for shape in ([4, 16, 16], [4, 16], [4]):
                doc = {"input": shape, "nodes": {"n": {"block": name, **dict(zip(required, values)), **extra}}}
                if _planned(doc):
                    return shape, doc["nodes"]["n"]
        return None

    for arg, bound in bounded.items():
        step = 0.5 if "number" in type_text(hints[arg]) else 1
        inside, outside = [], []
        if bound.minimum is not None:
            (outside if bound.exclusive_minimum else inside).append(bound.minimum)
            outside.append(bound.minimum - step)
        if bound.maximum is not None:
            (outside if bound.exclusive_maximum else inside).append(bound.maximum)
            outside.append(bound.maximum + step)
        number = float if step == 0.5 else int
        found = None
        for value in inside:  # where the planner accepts it, so must the schema
            planned = first_planned({arg: number(value)})
            if planned:
                found = found or planned
                doc = {"input": planned[0], "nodes": {"n": planned[1]}}
                assert validator.is_valid(doc), f"{name}.{arg} = {value}: the planner accepts it, the schema not"
        found = found or first_planned({})
        assert found, f"{name}: no input shape and arguments that plan"
        shape, node = found
        for value in outside:
            doc = {"input": shape, "nodes": {"n": {**node, arg: number(value)}}}
            assert not _planned(doc), f"{name}.{arg} = {value}: the hint says out of range, the block accepts it"
            assert not validator.is_valid(doc), f"{name}.{arg} = {value}: the schema accepts it"


# ajv's strict mode (strictSchema, strictRequired, strictTypes' union rule, strictTuples), restated:
# the schema must compile there, as editors other than the YAML language server use ajv
def _subschemas(schema, path="#"):
    if isinstance(schema, dict):
        yield path, schema
        for key, value in schema.items():
            if key in ("properties", "$defs", "patternProperties"):
                for name, sub in value.items():
                    if key == "$defs" and name == "blocks":  # a folder of schemas, one per block
                        for block, block_schema in sub.items():
                            yield from _subschemas(block_schema, f"{path}/$defs/blocks/{block}")
                    else:
                        yield from _subschemas(sub, f"{path}/{key}/{name}")
            elif key in ("allOf", "anyOf", "oneOf", "prefixItems"):
                for index, sub in enumerate(value):
                    yield from _subschemas(sub, f"{path}/{key}/{index}")
            elif key in ("not", "if", "then", "else", "items", "additionalProperties", "propertyNames", "contains"):
                yield from _subschemas(value, f"{path}/{key}")


STANDARD = {  # draft 2020-12's keywords, plus errorMessage (YAML language server, VS Code, ajv-errors)
    "$schema", "$id", "$ref", "$defs", "$comment", "title", "description", "default", "examples", "type", "enum",
    "const", "properties", "additionalProperties", "required", "propertyNames", "minProperties", "items",
    "prefixItems", "minItems", "maxItems", "anyOf", "allOf", "oneOf", "not", "if", "then", "else", "minimum",
    "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern", "errorMessage",
}


def test_the_schema_compiles_in_strict_mode():
    schema = generate()
    jsonschema.Draft202012Validator.check_schema(schema)
    for path, sub in _subschemas(schema):
        assert set(sub) <= STANDARD, f"{path}: unknown keywords {set(sub) - STANDARD}"
        assert not isinstance(sub.get("type"), list), f"{path}: a union type (ajv strictTypes)"
        missing = set(sub.get("required", ())) - set(sub.get("properties", {}))
        assert not missing, f"{path}: required {missing} not among the properties (ajv strictRequired)"
        if "prefixItems" in sub:
            assert sub.get("items") is False and sub.get("minItems") == len(sub["prefixItems"]), path
        for pattern in [sub.get("pattern")] if "pattern" in sub else []:
            re.compile(pattern)
