"""A corpus of malformed architecture files: each mistake is reported once, where it was made.

Every file of ``tests/malformed/`` is one mistake a user makes; the expectations live here, in
``CASES``, not in the files. Each case is checked in-process (``plan_model`` raises ``ArchError``
with the exact ``FILE:LINE:COL:``, the node and the key words, fast and without warnings), and a
representative sample through the real CLI (``python -m pipeline summary``): exit status 2, nothing
on stdout, exactly one line on stderr that starts with the location (the path as it was passed on
the command line), no traceback.
"""
from __future__ import annotations

import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import time_limit
from pipeline import ArchError, plan_model
from pipeline.cli import main, parse_shape, parse_vars

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parent / "malformed"
REL = "tests/malformed"  # how the CLI cases name the files: relative to ROOT, their working directory
# files that are only read through another file's `extends:`
HELPERS = {"extends_cycle/b.yaml", "extends_child/base.yaml"}
# hang guard, not a speed limit: every mistake is found at once, hostile files (alias bomb, 10^12
# parameters) too; one that is not defused runs for minutes or until memory runs out
SECONDS = 60.0


def case(name, line, col, words, node=None, args=(), at=None, id=None):
    """One malformed file and what the error must say.

    name: file under tests/malformed; line, col: 1-based position of the mistake; words: must all
    appear in the message; node: the node the message names (None: the mistake is outside any node,
    and no node may be named); args: extra CLI arguments (--var / --input); at: the file the location
    is in when it is not `name` itself (a file read through `extends:`).
    """
    return pytest.param(name, line, col, list(words), node, tuple(args), at or name, id=id or name)


CASES = [
    # blocks and arguments
    case("unknown_block.yaml", 4, 14, ["unknown block 'covn'", "did you mean 'conv'"], "a"),
    case("unknown_argument.yaml", 4, 28, ["no argument 'kernal'", "did you mean 'kernel'"], "a"),
    case("missing_argument.yaml", 4, 6, ["block 'conv' needs argument 'out'"], "a"),
    case("bad_act.yaml", 4, 33, ["argument 'act'", "'rleu'", "did you mean 'relu'"], "a"),
    case("unknown_init.yaml", 2, 7, ["unknown init scheme 'kaimin'", "did you mean 'kaiming'"]),
    case("defaults_unknown_block.yaml", 3, 3, ["defaults", "unknown block 'covn'", "did you mean 'conv'"]),
    case("node_without_block.yaml", 4, 6, ["needs 'block:'"], "b"),
    case("empty_node.yaml", 4, 5, ["must be a mapping with 'block:'", "null"], "b"),
    # wrong types
    case("string_for_int.yaml", 4, 25, ["argument 'out'", "undefined variable 'eight'"], "a"),
    case("list_for_int.yaml", 4, 25, ["argument 'out'", "expected an integer", "[8, 16]"], "a"),
    case("list_variable_for_int.yaml", 4, 25, ["argument 'out'", "expected an integer", "widths", "[8, 16]"], "a"),
    case("bool_for_int.yaml", 4, 25, ["argument 'out'", "expected an integer, got true"], "a"),
    case("fraction_for_int.yaml", 4, 25, ["argument 'out'", "expected an integer, got 2.5"], "a"),
    case("expression_fraction.yaml", 4, 25, ["argument 'out'", "expected an integer", "w / 2 = 3.5"], "a"),
    case("huge_int.yaml", 4, 25, ["argument 'out'", "out of range"], "a"),
    case("input_not_list.yaml", 1, 8, ["'input'", "expected a list of integers", "224"]),
    # graph structure
    case("bad_from.yaml", 5, 34, ["'from' refers to 'c'", "acyclic"], "b"),
    case("forward_reference.yaml", 4, 34, ["'from' refers to 'b'", "earlier nodes"], "a"),
    case("self_reference.yaml", 5, 34, ["refers to the node itself", "acyclic"], "b"),
    case("duplicate_node.yaml", 5, 3, ["duplicate key 'a'", "line 4"]),
    case("merge_single_input.yaml", 5, 34, ["block 'conv' takes one input, got 2"], "b"),
    case("reserved_name.yaml", 4, 3, ["node name 'forward' is reserved"], "forward"),
    case("input_as_name.yaml", 4, 3, ["node name 'input' is reserved"], "input"),
    case("unused_node.yaml", 5, 9, ["not used"], "dead"),
    case("output_missing.yaml", 5, 9, ["'output' names 'b'", "not a node"]),
    # shapes
    case("add_channel_mismatch.yaml", 6, 8, ["block 'add' needs equal channels, got 64 and 128"], "sum"),
    case("concat_spatial_mismatch.yaml", 6, 8, ["concat", "equal spatial size", "(8, 8, 8)", "(8, 16, 16)"], "cat"),
    case("spatial_zero.yaml", 6, 7, ["spatial size shrinks to zero", "(3, 1, 1)"], "p4"),
    case("kernel_too_large.yaml", 3, 6, ["cannot take input (3, 4, 4)", "Kernel size"], "a"),
    case("linear_on_map.yaml", 5, 7, ["linear needs a flat input", "(8, 16, 16)", "flatten"], "fc"),
    case("groups_divide.yaml", 4, 36, ["groups=3 must divide", "(3)", "(8)"], "a"),
    case("dropout_range.yaml", 5, 6, ["'p' must be in [0, 1)", "1.5"], "d"),
    case("inverted_kernel_zero.yaml", 3, 40, ["'kernel'", "positive"], "a"),
    case("too_many_params.yaml", 3, 7, ["parameters", "refusing to allocate"], "fc"),
    # variables and expressions
    case("undefined_variable.yaml", 4, 25, ["undefined variable 'widht'"], "a"),
    case("no_vars_section.yaml", 3, 25, ["undefined variable 'width'"], "a"),
    case("variable_cycle.yaml", 2, 21, ["cycle", "a -> b -> a"], "c"),
    case("division_by_zero.yaml", 4, 25, ["'16 // k'", "division by zero"], "c"),
    case("make_divisible_zero.yaml", 4, 25, ["make_divisible", "zero"], "a"),
    case("expression_import.yaml", 4, 25, ["__import__", "not allowed"], "a"),
    case("expression_attribute.yaml", 4, 25, ["'classes.real' is not allowed"], "a"),
    case("expression_lambda.yaml", 4, 25, ["lambda", "not allowed"], "a"),
    case("unknown_function.yaml", 4, 25, ["unknown function 'sqrt'", "min"], "a"),
    # unsafe or broken YAML
    case("python_tag.yaml", 1, 8, ["tag not allowed", "python/object/apply"]),
    case("alias_bomb.yaml", 1, 1, ["expands to more than", "alias"]),
    case("recursive_alias.yaml", 1, 8, ["contains itself through an alias"]),
    case("bad_indentation.yaml", 4, 5, ["invalid YAML"]),
    case("tab_indent.yaml", 3, 1, ["invalid YAML", "tab"]),
    case("unclosed_bracket.yaml", 2, 6, ["invalid YAML", "expected ',' or ']'", "closing bracket of the '[' opened at line 1, column 8"]),
    case("unclosed_brace.yaml", 5, 4, ["invalid YAML", "a ',' between entries, or the closing bracket of the '{' opened at line 4, column 6, is missing"]),
    case("flow_multiline_unquoted_index.yaml", 6, 21, ["invalid YAML", "quote", "depths[0]"]),
    case("flow_unquoted_index.yaml", 4, 42, ["invalid YAML", "quote", "depths[0]"]),
    case("flow_unquoted_call.yaml", 4, 47, ["divisor)", "quote"], "a"),
    case("empty.yaml", 1, 1, ["file is empty"]),
    # top level
    case("top_level_list.yaml", 1, 1, ["must be a mapping", "'input' and 'nodes'"]),
    case("missing_input.yaml", 1, 1, ["needs 'input'"]),
    case("missing_nodes.yaml", 1, 1, ["needs 'nodes'"]),
    case("unknown_top_key.yaml", 2, 1, ["unknown key 'node'", "did you mean 'nodes'"]),
    case("bad_input.yaml", 1, 8, ["'input' must be", "positive", "[3, 0, -4]"]),
    case("norm_momentum_range.yaml", 3, 16, ["'norm_momentum' must be in (0, 1]", "1.5"]),
    # auxiliary outputs and repeat
    case("negative_aux.yaml", 5, 35, ["loss weight must be positive", "-0.3"], "head"),
    case("nested_aux.yaml", 6, 31, ["'aux'", "top-level"], "u.p"),
    case("all_aux.yaml", 3, 3, ["every node is an auxiliary output"]),
    case("negative_repeat.yaml", 4, 36, ["'repeat' must be between", "-1"], "a"),
    case("huge_repeat.yaml", 4, 36, ["'repeat' must be between", "1000000"], "a"),
    case("repeat_merge.yaml", 5, 41, ["block 'add' merges inputs and cannot be repeated"], "b"),
    # extends
    case("extends_missing.yaml", 1, 10, ["'extends' file not found", "nowhere.yaml"]),
    case("extends_cycle/a.yaml", 1, 10, ["'extends' forms a cycle", "a.yaml"], at="extends_cycle/b.yaml"),
    case("extends_child/fractional_width.yaml", 4, 25, ["expected an integer", "width = 2.5"], "a",
         at="extends_child/base.yaml"),
    case("extends_child/typo_in_child.yaml", 5, 32, ["no argument 'strde'", "did you mean 'stride'"], "b"),
    # composite blocks
    case("composite_no_nodes.yaml", 4, 5, ["block 'unit' needs 'nodes'"]),
    case("composite_unknown_key.yaml", 4, 5, ["block 'unit'", "unknown key 'param'", "did you mean 'params'"]),
    case("composite_unknown_param.yaml", 8, 28, ["block 'unit' has no argument 'width'"], "u"),
    case("composite_missing_param.yaml", 8, 6, ["block 'unit' needs argument 'out'"], "u"),
    case("composite_recursion.yaml", 6, 14, ["block 'unit' uses itself more than 16 deep", "nothing ends"], "u.again"),
    case("composite_shadows_builtin.yaml", 3, 3, ["block 'conv' is a built-in block"]),
    # command-line overrides of a valid file
    case("cli_overrides.yaml", 2, 7, ["cannot override variable 'widht'", "did you mean 'width'"],
         args=["--var", "widht=16"], id="cli_overrides-unknown-var"),
    case("cli_overrides.yaml", 4, 25, ["argument 'out'", "expected an integer", "width = 2.5"], "a",
         args=["--var", "width=2.5"], id="cli_overrides-fraction"),
    case("cli_overrides.yaml", 5, 6, ["spatial size shrinks to zero", "(8, 2, 2)"], "p",
         args=["--input", "3,2,2"], id="cli_overrides-small-input"),
]
CASE_BY_ID = {c.id: c.values for c in CASES}


def overrides(args: tuple[str, ...]) -> dict:
    """The plan_model keyword arguments that the CLI derives from --var/--input."""
    pairs = dict.fromkeys(("--var", "--input"))
    variables, shape = [], None
    for flag, value in zip(args[::2], args[1::2]):
        assert flag in pairs, flag
        if flag == "--var":
            variables.append(value)
        else:
            shape = value
    return {"input_shape": parse_shape(shape), **parse_vars(variables)}


def check_message(message: str, where: str, line: int, col: int, words: list[str], node: str | None) -> None:
    prefix = f"{where}:{line}:{col}: "
    assert message.startswith(prefix), f"expected the location {prefix!r}, got: {message}"
    rest = message[len(prefix):]
    if node is not None:
        assert rest.startswith(f"node '{node}': "), f"the message must name node '{node}': {message}"
    else:
        assert not rest.startswith("node '"), f"no node is involved, yet one is named: {message}"
    for word in words:  # in the message proper: the file name must not count (tab_indent.yaml has "tab")
        assert word in rest, f"{word!r} not in {message!r}"
    assert "\n" not in message and "Traceback" not in message
    assert not message.rstrip().endswith(("known:", "allowed:")), f"an empty list of options: {message}"


def test_corpus_is_large_and_every_file_is_covered():
    files = {p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*.yaml")}
    assert len(files - HELPERS) >= 35
    assert files - HELPERS == {c.values[0] for c in CASES}, "every corpus file needs a case, every case a file"
    assert HELPERS <= files


@pytest.mark.parametrize("name, line, col, words, node, args, at", CASES)
def test_error_location_and_message(name, line, col, words, node, args, at):
    with warnings.catch_warnings(record=True) as caught, time_limit(SECONDS):
        warnings.simplefilter("always")
        with pytest.raises(ArchError) as info:
            plan_model(str(CORPUS / name), **overrides(args))
    err = info.value
    check_message(str(err), str(CORPUS / at), line, col, words, node)
    assert (err.loc.line, err.loc.col) == (line, col)
    # the CLI would print these to stderr, breaking its one-line contract
    assert not caught, f"warnings while planning: {[str(w.message) for w in caught]}"


# A representative sample through the CLI, in this process: node errors, file-level errors,
# YAML-level errors, the two bombs, a warning-prone block, a command-line override, an error in
# another file. Two real processes check what only a process shows (start-up output, exit status).
CLI_SAMPLE = ["unknown_block.yaml", "add_channel_mismatch.yaml", "duplicate_node.yaml", "python_tag.yaml",
              "alias_bomb.yaml", "too_many_params.yaml", "inverted_kernel_zero.yaml", "cli_overrides-unknown-var",
              "extends_cycle/a.yaml"]
VALID = "architectures/lenet5.yaml"
IN_A_PROCESS = ["python_tag.yaml"]


def cli_args(key: str) -> list[str]:
    return [f"{REL}/{CASE_BY_ID[key][0]}", *CASE_BY_ID[key][5]]


def _run_cli(args: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", "pipeline", "summary", *args], capture_output=True, text=True,
                              cwd=ROOT, timeout=300)
    except subprocess.TimeoutExpired:  # hang guard: a bomb that is not defused
        pytest.fail(f"python -m pipeline summary {' '.join(args)} did not finish in 300 s")


@pytest.fixture(scope="module")
def cli_runs():
    """The CLI processes of this module, run two at a time."""
    jobs = {key: cli_args(key) for key in IN_A_PROCESS} | {VALID: [VALID]}
    with ThreadPoolExecutor(2) as pool:
        futures = {key: pool.submit(_run_cli, args) for key, args in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


def check_one_line(code: int, out: str, err: str, key: str) -> None:
    name, line, col, words, node, args, at = CASE_BY_ID[key]
    assert code == 2, (code, err[-2000:])
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, f"stderr must be exactly one line:\n{err}"
    check_message(lines[0], f"{REL}/{at}", line, col, words, node)


@pytest.mark.parametrize("key", CLI_SAMPLE)
def test_cli_exit_2_one_line_no_traceback(key, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # the messages name the files as given, relative to the project
    with time_limit(SECONDS):
        code = main(["summary", *cli_args(key)])
    out, err = capsys.readouterr()
    check_one_line(code, out, err, key)


@pytest.mark.parametrize("key", IN_A_PROCESS)
def test_cli_process_exit_2_one_line(key, cli_runs):
    proc = cli_runs[key]
    check_one_line(proc.returncode, proc.stdout, proc.stderr, key)


def test_a_valid_file_exits_0(cli_runs):
    proc = cli_runs[VALID]
    assert proc.returncode == 0, proc.stderr
    assert "parameters: 61,706" in proc.stdout
    assert proc.stderr == ""
