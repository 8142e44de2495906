"""Property tests: mutated architecture files either build or raise ArchError with a location, nothing else."""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pipeline import ArchError, plan_model
from pipeline.language.values import Scope, resolve

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [
    (ROOT / "architectures" / "lenet5.yaml").read_text(),
    (ROOT / "architectures" / "tutorial_squeezenet_cifar.yaml").read_text(),
    """input: [3, 16, 16]
vars: {classes: 4, w: 8, depths: [1, 2]}
blocks:
  unit:
    params: {out: null, act: relu}
    nodes:
      c1: {block: conv, out: out, act: $act}
      c2: {block: conv, out: out, act: none}
      join: {block: add, from: [c2, input]}
nodes:
  stem: {block: conv, out: w}
  body: {block: unit, out: w, repeat: "depths[1]"}
  aux1: {block: global_pool, aux: 0.3}
  side: {block: conv, out: w, from: stem}
  cat:  {block: concat, from: [body, side]}
  pool: global_pool
  fc:   {block: linear, out: classes}
""",
]
SCALARS = st.one_of(st.integers(-10**13, 10**13), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.just("null"), st.text(st.sampled_from("abc_$[]{}:,-*/+ 0123456789'\"&!#"), max_size=12),
                    st.just("[1, 2]"), st.just("{a: 1}"), st.just("conv"), st.just("add"), st.just("input"))
PREFIX = re.compile(r"^[^\n]+:\d+:\d+: ")


def mutate(text: str, data) -> str:
    lines = text.splitlines()
    if not lines:
        return text
    kind = data.draw(st.sampled_from(["delete", "duplicate", "swap", "scalar", "truncate", "insert", "rename"]))
    i = data.draw(st.integers(0, len(lines) - 1))
    if kind == "delete":
        del lines[i]
    elif kind == "duplicate":
        lines.insert(i, lines[i])
    elif kind == "swap":
        j = data.draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "scalar":  # replace one value after a colon
        spots = [(m.start(1), m.end(1)) for m in re.finditer(r":\s*([^,{}\[\]\n]+)", lines[i])]
        if spots:
            a, b = data.draw(st.sampled_from(spots))
            lines[i] = lines[i][:a] + str(data.draw(SCALARS)) + lines[i][b:]
    elif kind == "truncate":
        cut = data.draw(st.integers(0, len(text)))
        return text[:cut]
    elif kind == "insert":
        lines.insert(i, data.draw(st.text(max_size=40)))
    else:  # rename a word: block names, argument names, node names
        words = re.findall(r"[A-Za-z_]+", lines[i])
        if words:
            word = data.draw(st.sampled_from(words))
            lines[i] = lines[i].replace(word, data.draw(st.sampled_from(["covn", "from", "input", "out", "x", ""])), 1)
    return "\n".join(lines) + "\n"


@settings(max_examples=800, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_mutated_files_build_or_fail_with_a_located_arch_error(data):
    text = mutate(data.draw(st.sampled_from(SEEDS)), data)
    if data.draw(st.booleans()):
        text = mutate(text, data)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "net.yaml"
        path.write_text(text)
        try:
            plan_model(path)
        except ArchError as err:
            assert PREFIX.match(str(err)), f"no FILE:LINE:COL prefix: {err}"
            assert str(err).startswith(str(path))


ATOMS = st.one_of(st.integers(-1000, 1000).map(str), st.sampled_from(["k", "d", "zz", "1e308", "0", "2.5", "d[1]"]))


@st.composite
def expressions(draw, depth=0):
    if depth > 3 or draw(st.booleans()):
        return draw(ATOMS)
    op = draw(st.sampled_from(["+", "-", "*", "/", "//", "%", "**", "min", "max", "neg", "if", "round"]))
    a, b = draw(expressions(depth + 1)), draw(expressions(depth + 1))
    if op in ("min", "max"):
        return f"{op}({a}, {b})"
    if op == "round":
        return f"round({a})"
    if op == "neg":
        return f"-({a})"
    if op == "if":
        return f"({a} if {b} > 0 else {a})"
    return f"({a}) {op} ({b})"


@settings(max_examples=400, deadline=None, derandomize=True)
@given(expressions())
def test_expressions_evaluate_to_a_number_or_raise_arch_error(expr):
    scope = Scope().child({"k": 4, "d": [1, 2, 3]})
    try:
        value = resolve(expr, float, scope, None, "x")
    except ArchError:
        return
    assert isinstance(value, float)
