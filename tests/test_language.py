"""The architecture language: every construct, on small inline files."""
from __future__ import annotations

import textwrap

import pytest
import torch

from pipeline import ArchError, TrainOutput, build_model, plan_model
from pipeline.language.values import Scope, resolve


def write(tmp_path, text: str, name: str = "net.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


TINY = """
name: tiny
input: [3, 16, 16]
vars: {classes: 4, width: 8}
nodes:
  stem: {block: conv, out: width, kernel: 3}
  pool: {block: global_pool}
  fc:   {block: linear, out: classes}
"""


def test_input_channels_are_inferred_and_shapes_propagate(tmp_path):
    plan = plan_model(write(tmp_path, TINY))
    shapes = {n.name: n.out_shape for n in plan.nodes}
    assert shapes == {"stem": (8, 16, 16), "pool": (8,), "fc": (4,)}
    # conv 3->8 (3x3, no bias, batch norm) + linear 8->4
    assert plan.params == 3 * 8 * 9 + 2 * 8 + 8 * 4 + 4


def test_variable_overrides_from_python(tmp_path):
    model = build_model(write(tmp_path, TINY), classes=7, width=5)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 7)
    assert model.stem.conv.out_channels == 5


def test_input_shape_override_changes_spatial_sizes_only(tmp_path):
    plan = plan_model(write(tmp_path, TINY), input_shape=(3, 40, 40))
    assert plan.nodes[0].out_shape == (8, 40, 40)


@pytest.mark.parametrize("expr, expected", [
    ("16*k", 64), ("k**2 + 1", 17), ("(k + 4) // 3", 2), ("max(k, 10) - min(1, 2)", 9), ("round(k / 3)", 1),
    ("depths[1] * 2", 8), ("-k + 10", 6), ("2 if i == 0 else 1", 2), ("7 % 4", 3), ("int(k * 1.5)", 6),
])
def test_safe_arithmetic(expr, expected):
    scope = Scope().child({"k": 4, "depths": [2, 4], "i": 0})
    assert resolve(expr, int, scope, None, "x") == expected


@pytest.mark.parametrize("expr, words", [
    ("__import__('os').system('true')", "not allowed"),
    ("__import__('os')", "unknown function '__import__'"),
    ("k.__class__", "not allowed"),
    ("(lambda: 1)()", "not allowed"),
    ("10 ** 1000", "exponent"),
    ("k / 0", "division by zero"),
    ("nope + 1", "undefined variable 'nope'"),
    ("k / 3", "expected an integer"),
])
def test_unsafe_or_wrong_expressions_are_arch_errors(expr, words):
    scope = Scope().child({"k": 4})
    with pytest.raises(ArchError, match=words.replace("(", r"\(")):
        resolve(expr, int, scope, None, "x")


def test_dollar_reference_substitutes_any_type_and_words_stay_literal(tmp_path):
    path = write(tmp_path, """
        input: [3, 8, 8]
        vars: {unit: conv, nonlin: tanh}
        nodes:
          a: {block: $unit, out: 4, act: $nonlin}
          b: {block: conv, out: 4, act: relu}
          p: global_pool
        """)
    model = build_model(path)
    assert isinstance(model.a.act, torch.nn.Tanh)
    assert isinstance(model.b.act, torch.nn.ReLU)


def test_repeat_stacks_copies_and_exposes_the_index(tmp_path):
    path = write(tmp_path, """
        input: [3, 32, 32]
        nodes:
          stage: {block: conv, out: 8, stride: "2 if i == 0 else 1", repeat: 3}
          p: global_pool
        """)
    plan = plan_model(path)
    assert plan.nodes[0].out_shape == (8, 16, 16)
    model = build_model(path)
    strides = [m.conv.stride for m in model.stage]
    assert strides == [(2, 2), (1, 1), (1, 1)]
    assert "stage.2.conv.weight" in model.state_dict()


def test_from_concat_and_add_merge_branches(tmp_path):
    path = write(tmp_path, """
        input: [3, 8, 8]
        nodes:
          a: {block: conv, out: 4}
          b: {block: conv, out: 6, from: input}
          cat: {block: concat, from: [a, b]}
          c: {block: conv, out: 10}
          sum: {block: add, from: [cat, c]}
          p: global_pool
        """)
    plan = plan_model(path)
    shapes = {n.name: n.out_shape for n in plan.nodes}
    assert shapes["cat"] == (10, 8, 8) and shapes["sum"] == (10, 8, 8)
    model = build_model(path).eval()
    x = torch.randn(2, 3, 8, 8)
    cat = torch.cat([model.a(x), model.b(x)], 1)
    assert torch.allclose(model(x), (cat + model.c(cat)).mean((2, 3)), atol=1e-6)


COMPOSITE = """
input: [3, 16, 16]
vars: {classes: 3, w: 4}
blocks:
  unit:                     # conv-conv with a residual join, as a user would write it
    params: {out: null, act: relu}
    nodes:
      c1: {block: conv, out: out, act: $act}
      c2: {block: conv, out: out, act: none}
      join: {block: add, from: [c2, input]}
  double:                   # composites nest
    params: {out: null}
    nodes:
      first: {block: unit, out: out}
      second: {block: unit, out: out, act: tanh}
nodes:
  stem: {block: conv, out: 2*w}
  body: {block: double, out: 2*w, repeat: 2}
  pool: global_pool
  fc: {block: linear, out: classes}
"""


def test_composite_blocks_take_parameters_and_nest(tmp_path):
    model = build_model(write(tmp_path, COMPOSITE), w=3)
    keys = model.state_dict().keys()
    assert "body.1.second.c1.conv.weight" in keys
    assert model.body[0].second.c1.conv.out_channels == 6
    assert isinstance(model.body[0].second.c1.act, torch.nn.Tanh)
    assert isinstance(model.body[0].first.c1.act, torch.nn.ReLU)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 3)


def test_composite_parameter_expressions_use_the_callers_variables(tmp_path):
    plan = plan_model(write(tmp_path, COMPOSITE), w=5)
    assert plan.nodes[1].out_shape == (10, 16, 16)


def test_extends_overrides_variables_and_keeps_the_rest(tmp_path):
    write(tmp_path, COMPOSITE, "base.yaml")
    child = write(tmp_path, """
        extends: base.yaml
        name: wider
        vars: {w: 8}
        """, "child.yaml")
    plan = plan_model(child)
    assert plan.name == "wider"
    assert plan.nodes[0].out_shape == (16, 16, 16)


def test_defaults_apply_to_every_node_of_a_block_and_nodes_override_them(tmp_path):
    path = write(tmp_path, """
        input: [3, 8, 8]
        defaults:
          conv: {norm: none, act: tanh}
        nodes:
          a: {block: conv, out: 4}
          b: {block: conv, out: 4, act: relu}
          p: global_pool
        """)
    model = build_model(path)
    assert model.a.conv.bias is not None and isinstance(model.a.act, torch.nn.Tanh)
    assert isinstance(model.b.act, torch.nn.ReLU)


def test_train_mode_returns_aux_logits_with_weights_and_eval_skips_them(tmp_path):
    path = write(tmp_path, """
        input: [3, 16, 16]
        vars: {classes: 5}
        blocks:
          head:
            nodes:
              p: global_pool
              fc: {block: linear, out: classes}
        nodes:
          stem: {block: conv, out: 8}
          aux1: {block: head, aux: 0.3}
          body: {block: conv, out: 8, stride: 2}
          pool: global_pool
          fc: {block: linear, out: classes}
        """)
    model = build_model(path)
    x = torch.randn(2, 3, 16, 16)
    out = model.train()(x)
    assert isinstance(out, TrainOutput)
    assert out.logits.shape == (2, 5) and set(out.aux) == {"aux1"}
    assert out.aux["aux1"].weight == pytest.approx(0.3) and out.aux["aux1"].logits.shape == (2, 5)
    # the aux node defaults its input to the previous node; `body` skips the aux node
    assert plan_model(path).nodes[2].inputs == ("stem",)

    calls = []
    model.aux1.register_forward_hook(lambda *a: calls.append(1))
    logits = model.eval()(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 5) and calls == []
    plan = plan_model(path)
    assert plan.inference_macs < plan.macs


def test_unused_node_is_an_error(tmp_path):
    path = write(tmp_path, """
        input: [3, 8, 8]
        nodes:
          a: {block: conv, out: 4}
          dead: {block: conv, out: 4}
          p: {block: global_pool, from: a}
        """)
    with pytest.raises(ArchError, match="node 'dead': node is not used"):
        plan_model(path)


def test_error_names_file_line_column_and_node(tmp_path):
    path = write(tmp_path, """
        input: [3, 8, 8]
        nodes:
          a: {block: conv, out: 64}
          b: {block: conv, out: 128, from: input}
          sum: {block: add, from: [a, b]}
        """)
    with pytest.raises(ArchError) as err:
        plan_model(path)
    assert str(err.value) == (f"{path}:6:8: node 'sum': block 'add' needs equal channels, got 64 and 128")


def test_nothing_is_allocated_while_planning(tmp_path):
    # 3 x 50M-parameter linears: planning is instant and allocation-free (meta device)
    path = write(tmp_path, """
        input: [10000]
        nodes:
          a: {block: linear, out: 5000}
          b: {block: linear, out: 10000}
          c: {block: linear, out: 5000}
        """)
    plan = plan_model(path)
    assert plan.params == 10000 * 5000 * 2 + 5000 * 10000 + 5000 * 2 + 10000


def test_macs_of_a_conv_match_hand_computation(tmp_path):
    path = write(tmp_path, """
        input: [3, 10, 10]
        nodes:
          a: {block: conv, out: 4, kernel: 3, norm: none, act: none}
          p: global_pool
        """)
    assert plan_model(path).nodes[0].macs == 4 * 10 * 10 * 3 * 9


def test_building_from_a_mapping(tmp_path):
    spec = {"input": [1, 8, 8], "vars": {"classes": 2},
            "nodes": {"c": {"block": "conv", "out": 3}, "p": "global_pool", "fc": {"block": "linear", "out": "classes"}}}
    assert build_model(spec)(torch.randn(1, 1, 8, 8)).shape == (1, 2)


def test_state_dict_keys_are_stable_under_edits_elsewhere(tmp_path):
    before = build_model(write(tmp_path, TINY)).state_dict().keys()
    edited = TINY.replace("  pool: {block: global_pool}", "  extra: {block: conv, out: width}\n  pool: {block: global_pool}")
    after = build_model(write(tmp_path, edited, "edited.yaml")).state_dict().keys()
    assert set(before) <= set(after)
    assert {k for k in after if not k.startswith("extra.")} == set(before)


def test_every_name_the_graph_owns_works_as_a_node_name_or_is_refused(tmp_path):
    """Node names become module attributes: each name an nn.Module or the graph owns either builds and
    runs (also inside a composite block) or is refused at plan time, never a crash at build time."""
    import torch
    from pipeline.language.model import GraphNet

    names = sorted({n for n in dir(GraphNet) if not n.startswith("_")} | set(GraphNet.INSTANCE_ATTRIBUTES) |
                   {"output", "order", "steps", "train_steps", "held", "node", "net"})
    for name in names:
        for where in ("top", "composite"):
            arch = tmp_path / f"{name}_{where}.yaml"
            body = f"  {name}: {{block: conv, out: 4}}\n"
            if where == "top":
                arch.write_text(f"input: [3, 8, 8]\nnodes:\n{body}  pool: global_pool\n  fc: {{block: linear, out: 2}}\n")
            else:
                arch.write_text("input: [3, 8, 8]\nblocks:\n  unit:\n    nodes:\n    " + body +
                                "nodes:\n  u: unit\n  pool: global_pool\n  fc: {block: linear, out: 2}\n")
            try:
                net = build_model(str(arch))
            except ArchError as err:
                assert f"node name '{name}' is reserved" in str(err), (name, where, str(err))
                continue
            assert net.train()(torch.randn(2, 3, 8, 8)).shape == (2, 2), (name, where)
            assert net.eval()(torch.randn(1, 3, 8, 8)).shape == (1, 2), (name, where)


def test_a_long_expression_is_cut_in_its_error(tmp_path):
    arch = tmp_path / "long.yaml"
    arch.write_text('input: [3, 8, 8]\nnodes:\n  c: {block: conv, out: "' + "1 + " * 2000 + 'nosuch"}\n')
    with pytest.raises(ArchError) as err:
        plan_model(str(arch))
    text = str(err.value)
    assert len(text) < 400 and "... (8006 characters)': longer than 300 characters" in text, text


@pytest.mark.parametrize("value, words", [
    ("yes", "'yes' is a boolean to PyYAML (YAML 1.1) but text to editors (YAML 1.2): write true or false"),
    ("Off", "'Off' is a boolean to PyYAML"),
    ("010", "'010' is the octal number 8 to PyYAML (YAML 1.1) but 10 to editors (YAML 1.2)"),
    ("1:30", "'1:30' is a base-60 number to PyYAML (YAML 1.1) but text to editors (YAML 1.2)"),
])
def test_a_value_yaml_1_1_and_1_2_read_differently_is_an_error_where_it_is(value, words, tmp_path):
    arch = tmp_path / "net.yaml"
    arch.write_text(f"input: [3, 8, 8]\nnodes:\n  c: {{block: conv, out: 4, bias: {value}}}\n")
    with pytest.raises(ArchError) as err:
        plan_model(str(arch))
    assert str(err.value).startswith(f"{arch}:3:") and words in str(err.value)
    arch.write_text(f"input: [3, 8, 8]\nnodes:\n  c: {{block: conv, out: 4, bias: '{value}'}}\n")  # quoted: text
    with pytest.raises(ArchError) as err:
        plan_model(str(arch))
    assert "PyYAML" not in str(err.value)  # an ordinary type error now: the portable spelling is read alike
