"""A corpus of malformed architecture files: each mistake is reported once, where it was made.

Every file is checked in-process (ArchError with the exact location and key words), and a
representative subset through the real CLI (exit status 2, one stderr line, no traceback).
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import ArchError, plan_model

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parent / "malformed"

# file, line, col, node (None when the mistake is outside any node), key words, variable overrides
CASES = [
    ("unknown_block.yaml", 4, 14, "a", ["unknown block 'covn'", "did you mean 'conv'"], {}),
    ("unknown_argument.yaml", 4, 28, "a", ["no argument 'kernal'", "did you mean 'kernel'"], {}),
    ("missing_argument.yaml", 4, 6, "a", ["needs argument 'out'"], {}),
    ("string_for_int.yaml", 4, 25, "a", ["undefined variable 'eight'"], {}),
    ("list_for_int.yaml", 4, 25, "a", ["argument 'out'", "expected an integer", "[8, 16]"], {}),
    ("bool_for_int.yaml", 4, 25, "a", ["expected an integer, got true"], {}),
    ("fraction_for_int.yaml", 4, 25, "a", ["expected an integer, got 2.5"], {}),
    ("expression_fraction.yaml", 4, 25, "a", ["expected an integer", "w / 2 = 3.5"], {}),
    ("bad_from.yaml", 5, 34, "b", ["'from' refers to 'c'", "acyclic"], {}),
    ("forward_reference.yaml", 4, 34, "a", ["'from' refers to 'b'", "earlier nodes"], {}),
    ("self_reference.yaml", 5, 34, "b", ["refers to the node itself", "acyclic"], {}),
    ("duplicate_node.yaml", 5, 3, None, ["duplicate key 'a'", "line 4"], {}),
    ("add_channel_mismatch.yaml", 6, 8, "sum", ["block 'add' needs equal channels, got 64 and 128"], {}),
    ("concat_spatial_mismatch.yaml", 6, 8, "cat", ["concat", "equal spatial size", "(8, 8, 8)", "(8, 16, 16)"], {}),
    ("spatial_zero.yaml", 6, 7, "p4", ["spatial size shrinks to zero", "(3, 1, 1)"], {}),
    ("kernel_too_large.yaml", 3, 6, "a", ["spatial size shrinks to zero", "Kernel size"], {}),
    ("undefined_variable.yaml", 4, 25, "a", ["undefined variable 'widht'"], {}),
    ("variable_cycle.yaml", 2, 21, "c", ["cycle", "a -> b -> a"], {}),
    ("division_by_zero.yaml", 4, 25, "c", ["division by zero"], {}),
    ("expression_import.yaml", 4, 25, "a", ["not allowed"], {}),
    ("expression_attribute.yaml", 4, 25, "a", ["'classes.real' is not allowed"], {}),
    ("expression_lambda.yaml", 4, 25, "a", ["not allowed"], {}),
    ("unknown_function.yaml", 4, 25, "a", ["unknown function 'sqrt'"], {}),
    ("python_tag.yaml", 1, 8, None, ["tag not allowed", "python/object/apply"], {}),
    ("alias_bomb.yaml", 1, 1, None, ["expands to more than", "alias"], {}),
    ("recursive_alias.yaml", 1, 8, None, ["contains itself through an alias"], {}),
    ("bad_indentation.yaml", 4, 5, None, ["invalid YAML"], {}),
    ("unclosed_bracket.yaml", 2, 6, None, ["invalid YAML", "expected ',' or ']'"], {}),
    ("empty.yaml", 1, 1, None, ["file is empty"], {}),
    ("top_level_list.yaml", 1, 1, None, ["must be a mapping"], {}),
    ("missing_input.yaml", 1, 1, None, ["needs 'input'"], {}),
    ("missing_nodes.yaml", 1, 1, None, ["needs 'nodes'"], {}),
    ("unknown_top_key.yaml", 2, 1, None, ["unknown key 'node'", "did you mean 'nodes'"], {}),
    ("bad_input.yaml", 1, 8, None, ["'input' must be", "positive", "[3, 0, -4]"], {}),
    ("negative_aux.yaml", 5, 35, "head", ["loss weight must be positive", "-0.3"], {}),
    ("nested_aux.yaml", 6, 31, "u.p", ["'aux'", "top-level"], {}),
    ("all_aux.yaml", 3, 3, None, ["every node is an auxiliary output"], {}),
    ("unused_node.yaml", 5, 9, "dead", ["not used"], {}),
    ("negative_repeat.yaml", 4, 36, "a", ["'repeat' must be between", "-1"], {}),
    ("huge_repeat.yaml", 4, 36, "a", ["'repeat' must be between", "1000000"], {}),
    ("repeat_merge.yaml", 5, 41, "b", ["cannot be repeated"], {}),
    ("linear_on_map.yaml", 5, 7, "fc", ["linear needs a flat input", "(8, 16, 16)", "flatten"], {}),
    ("extends_missing.yaml", 1, 10, None, ["'extends' file not found", "nowhere.yaml"], {}),
    ("extends_cycle/a.yaml", 1, 10, None, ["'extends' forms a cycle"], {}),
    ("composite_no_nodes.yaml", 4, 5, None, ["block 'unit' needs 'nodes'"], {}),
    ("composite_unknown_param.yaml", 8, 28, "u", ["block 'unit' has no argument 'width'"], {}),
    ("composite_recursion.yaml", 6, 14, "u.again", ["block 'unit' uses itself"], {}),
    ("composite_missing_param.yaml", 8, 6, "u", ["block 'unit' needs argument 'out'"], {}),
    ("reserved_name.yaml", 4, 3, "forward", ["reserved"], {}),
    ("input_as_name.yaml", 4, 3, "input", ["reserved"], {}),
    ("too_many_params.yaml", 3, 7, "fc", ["parameters", "refusing to allocate"], {}),
    ("output_missing.yaml", 5, 9, None, ["'output' names 'b'"], {}),
    ("dropout_range.yaml", 5, 6, "d", ["'p' must be in [0, 1)", "1.5"], {}),
    ("groups_divide.yaml", 4, 6, "a", ["groups=3 must divide"], {}),
    ("bad_act.yaml", 4, 33, "a", ["argument 'act'", "did you mean 'relu'"], {}),
    ("merge_single_input.yaml", 5, 34, "b", ["takes one input, got 2"], {}),
    ("add_channel_mismatch.yaml", 2, 7, None, ["cannot override variable 'width'"], {"width": 3}),
]


def location_file(name: str) -> str:
    # the extends cycle is detected while loading the second file of the pair
    return str(CORPUS / ("extends_cycle/b.yaml" if name == "extends_cycle/a.yaml" else name))


def test_corpus_is_large_and_every_file_is_covered():
    files = {str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*.yaml")} - {"extends_cycle/b.yaml"}
    assert len(files) >= 30
    assert files == {c[0] for c in CASES}


@pytest.mark.parametrize("name, line, col, node, words, overrides", CASES, ids=[c[0] for c in CASES])
def test_error_location_and_message(name, line, col, node, words, overrides):
    with pytest.raises(ArchError) as info:
        plan_model(CORPUS / name, **overrides)
    message = str(info.value)
    assert message.startswith(f"{location_file(name)}:{line}:{col}: "), message
    if node:
        assert f"node '{node}': " in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    assert "\n" not in message


CLI_SAMPLE = ["unknown_block.yaml", "add_channel_mismatch.yaml", "python_tag.yaml", "alias_bomb.yaml",
              "duplicate_node.yaml", "variable_cycle.yaml", "too_many_params.yaml", "unused_node.yaml"]


@pytest.mark.parametrize("name", CLI_SAMPLE)
def test_cli_exit_2_one_line_no_traceback(name):
    case = next(c for c in CASES if c[0] == name)
    path = str(CORPUS / name)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pipeline", "summary", path], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert time.monotonic() - start < 30  # the alias bomb and 10^12 parameters fail fast, not by exhaustion
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith(f"{path}:{case[1]}:{case[2]}: ")


def test_cli_unknown_variable_override():
    proc = subprocess.run([sys.executable, "-m", "pipeline", "summary", str(ROOT / "architectures/lenet5.yaml"),
                           "--var", "clases=3"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "cannot override variable 'clases'" in proc.stderr
    assert "did you mean 'classes'" in proc.stderr


def test_a_valid_file_exits_0():
    proc = subprocess.run([sys.executable, "-m", "pipeline", "summary", str(ROOT / "architectures/lenet5.yaml")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "parameters: 61,706" in proc.stdout
