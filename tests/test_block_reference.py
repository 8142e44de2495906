"""The README's block reference is generated from the registry, and the expression language is documented."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from pipeline import build_model
from pipeline.blocks import BLOCKS
from pipeline.cli import main
from pipeline.language.expr import _FUNCS
from pipeline.reference import block_rows, docstring_args, markdown

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
START, END = "<!-- blocks:start -->\n", "<!-- blocks:end -->"


def test_readme_block_reference_is_the_generated_one():
    copy = README[README.index(START) + len(START):README.index(END)]
    assert copy == markdown(), "README's block reference is stale: paste `python -m pipeline blocks --markdown`"


def test_every_block_and_argument_is_documented():
    rows = block_rows()
    assert [name for name, _, _ in rows] == sorted(BLOCKS)
    missing = [f"{name}.{arg}" for name, _, args in rows for arg, _, _, meaning in args if not meaning]
    assert not missing, f"arguments without a meaning (docstring Args: or reference.GLOSSARY): {missing}"
    assert all(summary for _, summary, _ in rows)
    for name in BLOCKS:  # an Args: entry must name a real argument (catches renames)
        documented = set(docstring_args(BLOCKS[name]))
        real = {arg for row_name, _, args in rows if row_name == name for arg, *_ in args}
        assert documented <= real, f"{name}: Args: documents {documented - real}, which it does not take"


@pytest.mark.parametrize("command", ["python -m pipeline blocks --markdown", "python -m pipeline blocks"])
def test_blocks_command(command, capsys):
    assert main(shlex.split(command)[3:]) == 0
    out = capsys.readouterr().out
    if "--markdown" in command:
        assert out == markdown()
    else:
        assert "inverted: MobileNet v2/v3" in out and "    se_gate (activation, sigmoid): " in out


def test_readme_documents_every_expression_function():
    section = README[README.index("### Variables and expressions"):README.index("### Repetition")]
    for name in _FUNCS:
        assert f"`{name}(" in section, f"expression function '{name}' is not in the README"
    for syntax in ("${...}", "$name", "in_channels", "in_shape", "a if cond else b", "widths[-1]"):
        assert syntax in section


@pytest.mark.parametrize("kernel", ["${[1, k]}", "[1, k]"])
def test_documented_list_expressions_for_sizes(kernel):
    model = build_model({"input": [2, 9, 9], "vars": {"k": 5},
                         "nodes": {"c": {"block": "conv", "out": 2, "kernel": kernel}}})
    assert model.c.conv.kernel_size == (1, 5)
