"""`python -m pipeline schema`: the JSON Schema of architecture files, generated from the registry."""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Literal

import jsonschema
import pytest
import yaml

from pipeline.blocks import BLOCKS, Block, register
from pipeline.cli import main
from pipeline.schema import dump, generate

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "architectures" / "schema.json"
ZOO = sorted((ROOT / "architectures").glob("*.yaml"))
MALFORMED = ROOT / "tests" / "malformed"
# the corpus files whose mistake is a property of one node or key (block names, arguments, types, bounds,
# reserved names): the schema flags them; the rest need shapes, variables, the graph or the file's own
# composites, which only the loader knows (listed in the README); test_schema_mistakes.py has more
DETECTABLE = [
    "alias_bomb.yaml", "bad_act.yaml", "bad_input.yaml", "bool_for_int.yaml", "composite_no_nodes.yaml",
    "composite_shadows_builtin.yaml", "composite_unknown_key.yaml", "defaults_unknown_block.yaml",
    "dropout_range.yaml", "empty.yaml", "empty_node.yaml", "extends_child/typo_in_child.yaml",
    "flow_unquoted_call.yaml", "fraction_for_int.yaml", "huge_int.yaml", "huge_repeat.yaml", "input_as_name.yaml",
    "input_not_list.yaml", "inverted_kernel_zero.yaml", "list_for_int.yaml", "merge_single_input.yaml",
    "missing_argument.yaml", "missing_input.yaml", "missing_nodes.yaml", "negative_aux.yaml",
    "negative_repeat.yaml", "nested_aux.yaml", "node_without_block.yaml", "norm_momentum_range.yaml",
    "recursive_alias.yaml", "repeat_merge.yaml", "reserved_name.yaml", "top_level_list.yaml",
    "unknown_argument.yaml", "unknown_block.yaml", "unknown_init.yaml", "unknown_top_key.yaml",
]


@pytest.fixture(scope="module")
def validator():
    schema = generate()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_committed_schema_is_the_generated_one():
    assert COMMITTED.read_text() == dump(), \
        "architectures/schema.json is stale: run python -m pipeline schema -o architectures/schema.json"


def test_every_block_and_argument_is_in_the_schema():
    schema = generate()
    assert set(schema["$defs"]["blocks"]) == set(BLOCKS)
    conv = schema["$defs"]["blocks"]["conv"]["properties"]
    assert conv["kernel"]["default"] == 3 and "required" in conv["out"]["description"]
    assert {"relu", "gelu"} <= set(conv["act"]["anyOf"][0]["enum"])
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"vars", "blocks", "defaults", "extends", "nodes"} <= set(schema["properties"])
    # every key of the language is described (a new key gets a generic entry until it is)
    from pipeline.language.document import TOP_KEYS
    from pipeline.language.plan import NODE_KEYS

    assert all(schema["properties"][k].get("description") or k == "description" for k in TOP_KEYS)
    node = schema["$defs"]["node"]["then"]["properties"]
    # 'block' is described per block type: hover on `block: conv` shows conv's summary
    assert all(node[k].get("description") for k in NODE_KEYS if k != "block")


def test_hover_text_is_the_readme_reference():
    """One source: every block's summary and every argument's meaning are the README reference's words."""
    from pipeline.reference import block_rows

    blocks = generate()["$defs"]["blocks"]
    for name, summary, args in block_rows():
        assert blocks[name]["properties"]["block"]["description"] == f"{name}: {summary}"
        for arg, type_text, default, meaning in args:
            described = blocks[name]["properties"][arg]["description"]
            assert described.startswith(f"{meaning} ({type_text}; "), f"{name}.{arg}: {described}"


@pytest.mark.parametrize("path", ZOO, ids=lambda p: p.name)
def test_zoo_file_validates(path, validator):
    errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
    assert not errors, f"{path.name}: {errors[0].message}"


@pytest.mark.parametrize("name", DETECTABLE)
def test_malformed_file_fails_validation(name, validator):
    assert not validator.is_valid(yaml.safe_load((MALFORMED / name).read_text()))


def test_a_new_block_changes_the_schema():
    class Ripple(Block):
        """A test block.

        Args:
            width: how many ripples
            shape: which kind
        """

        def __init__(self, in_shape, *, width: int, shape: Literal["sine", "square"] = "sine"):
            super().__init__()

    before = generate()
    register("ripple_test")(Ripple)
    try:
        after = generate()
    finally:
        del BLOCKS["ripple_test"]
    assert "ripple_test" not in before["$defs"]["blocks"]
    ripple = after["$defs"]["blocks"]["ripple_test"]
    assert ripple["properties"]["width"]["description"] == "how many ripples (int; required)"
    assert ripple["properties"]["shape"]["default"] == "sine"
    validator = jsonschema.Draft202012Validator(after)
    doc = {"input": [3, 8, 8], "nodes": {"r": {"block": "ripple_test", "width": 2, "shape": "square"}}}
    assert validator.is_valid(doc)
    doc["nodes"]["r"]["shape"] = "triangle"
    assert not validator.is_valid(doc)
    assert generate() == before


def test_expressions_and_references_are_accepted(validator):
    doc = {"input": [3, 32, 32], "vars": {"k": 2, "a": "relu"},
           "nodes": {"c": {"block": "conv", "out": "16*k", "act": "$a", "bias": "$b", "repeat": "k"},
                     "p": "flatten"}}
    assert validator.is_valid(doc)


def test_cli_prints_and_writes_the_schema(tmp_path, monkeypatch, capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == generate()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "architectures").mkdir()
    command = "python -m pipeline schema -o architectures/schema.json"  # the README's command
    assert main(shlex.split(command)[3:]) == 0
    assert (tmp_path / "architectures" / "schema.json").read_text() == dump()
    assert main(["schema", "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_vscode_settings_point_zoo_files_at_the_schema():
    settings = json.loads((ROOT / ".vscode" / "settings.json").read_text())
    assert "architectures/*.yaml" in settings["yaml.schemas"]["./architectures/schema.json"]
