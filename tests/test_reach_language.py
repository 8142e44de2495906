"""Language reach: a composite block reads its input's shape, `defaults:` reach every block that has the
argument, and unknown block names get only close suggestions."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline import ArchError, build_model, plan_model
from pipeline.blocks import BLOCKS
from pipeline.language.names import close_names, suggest_block

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
DEPTHWISE = {"dw": {"params": {"kernel": 3},
                    "nodes": {"c": {"block": "conv", "out": "in_channels", "groups": "in_channels",
                                    "kernel": "kernel"}}}}


def test_composite_reads_its_input_channels_and_shape():
    spec = {"input": [6, 8, 8], "blocks": {
        **DEPTHWISE,
        "probe": {"nodes": {"c": {"block": "conv", "out": "in_shape[1] + in_channels", "kernel": 1}}}},
        "nodes": {"a": {"block": "dw", "kernel": 5}, "b": {"block": "conv", "out": 10},
                  "c": {"block": "dw"}, "p": {"block": "probe"}}}
    model = build_model(spec)
    assert model.a.c.conv.groups == 6 and model.a.c.conv.out_channels == 6
    assert model.c.c.conv.groups == 10  # each use sees its own input
    assert plan_model(spec).out_shape == (8 + 10, 8, 8)


def test_input_names_are_reserved_in_composites_and_in_vars():
    text = str(pytest.raises(ArchError, plan_model, {"input": [3, 4, 4], "blocks": {
        "b": {"params": {"in_channels": None}, "nodes": {"c": {"block": "conv", "out": 4}}}},
        "nodes": {"x": {"block": "b", "in_channels": 3}}}).value)
    assert "parameter name 'in_channels' is reserved" in text
    text = str(pytest.raises(ArchError, plan_model, {"input": [3, 4, 4], "vars": {"in_shape": [1, 2]},
                                                     "nodes": {"x": {"block": "conv", "out": 4}}}).value)
    assert "variable name 'in_shape' is reserved: it is the model's input shape" in text


def test_top_level_nodes_read_the_models_input_shape():
    # a causal TCN's classifier reads the last time step: crop all but it, whatever the input's length
    spec = {"input": [2, 16], "nodes": {
        "c": {"block": "conv", "out": "4 * in_channels", "kernel": 3},
        "last": {"block": "crop", "left": "in_shape[1] - 1"},
        "flat": "flatten", "fc": {"block": "linear", "out": 3}}}
    assert plan_model(spec).nodes[1].out_shape == (8, 1)
    plan = plan_model(spec, input_shape=(2, 40))  # the data's length, not the file's
    assert plan.nodes[1].out_shape == (8, 1) and plan.params == plan_model(spec).params
    x = torch.randn(2, 2, 40)
    model = build_model(spec, input_shape=(2, 40))
    assert torch.equal(model.last(model.c(x)), model.c(x)[:, :, -1:])
    # inside a composite block the names still mean the block's own input
    spec = {"input": [3, 8, 8], "blocks": {"dw": DEPTHWISE["dw"]},
            "nodes": {"a": {"block": "conv", "out": 10}, "b": {"block": "dw"}}}
    assert build_model(spec).b.c.conv.groups == 10
    # the README's one-node composite: the length that reaches it, after a conv without padding
    spec = {"input": [1, 64], "blocks": {"last": {"nodes": {"c": {"block": "crop", "left": "in_shape[1] - 1"}}}},
            "nodes": {"a": {"block": "conv", "out": 4, "kernel": 5, "padding": 0}, "l": {"block": "last"}}}
    assert plan_model(spec).out_shape == (4, 1)
    assert "blocks: {last: {nodes: {c: {block: crop, left: \"in_shape[1] - 1\"}}}}" in README


def test_defaults_star_reaches_every_block_with_the_argument_including_built_in_and_composite():
    spec = {"input": [8, 6, 6],
            "defaults": {"*": {"norm_eps": 1e-3}, "inverted": {"act": "silu"}},
            "blocks": {"unit": {"params": {"norm_eps": 1e-5},
                                "nodes": {"c": {"block": "conv", "out": 8, "norm_eps": "norm_eps"}}}},
            "nodes": {"c": {"block": "conv", "out": 8},
                      "inv": {"block": "inverted", "out": 8, "se": 0.25},
                      "fused": {"block": "fused_inverted", "out": 8, "norm_eps": 0.01},  # the node wins
                      "u": {"block": "unit"},
                      "pool": {"block": "global_pool"}}}  # no norm_eps: untouched, no error
    model = build_model(spec)
    assert model.c.norm.eps == 1e-3
    assert {m.eps for m in model.inv.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1e-3}
    assert isinstance(model.inv.conv[0].act, torch.nn.SiLU)
    assert {m.eps for m in model.fused.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {0.01}
    assert model.u.c.norm.eps == 1e-3  # through the composite's own parameter


def test_defaults_of_a_block_type_apply_inside_composite_blocks():
    spec = {"input": [3, 6, 6], "defaults": {"conv": {"act": "gelu"}},
            "blocks": {"pair": {"nodes": {"a": {"block": "conv", "out": 4}, "b": {"block": "conv", "out": 4}}}},
            "nodes": {"p": {"block": "pair"}}}
    model = build_model(spec)
    assert isinstance(model.p.a.act, torch.nn.GELU) and isinstance(model.p.b.act, torch.nn.GELU)


@pytest.mark.parametrize("word, expected", [
    ("covn", "conv"), ("bottlenek", "bottleneck"), ("maxpol", "maxpool"), ("upsampel", "upsample"),
    ("deconv", "conv_transpose"), ("interpolate", "upsample"), ("stochastic_depth", "drop_path"),
    ("squeeze_excitation", "se")])
def test_unknown_block_suggests_close_names_and_aliases(word, expected):
    assert f"(did you mean '{expected}'" in suggest_block(word, list(BLOCKS))


@pytest.mark.parametrize("word", ["zigzag", "transformer", "attention"])
def test_unknown_block_far_from_every_name_lists_the_blocks(word):
    text = suggest_block(word, list(BLOCKS))
    assert "did you mean" not in text and text.startswith("; blocks: ")
    assert all(name in text for name in BLOCKS)


def test_no_far_fetched_guesses():
    assert "add" not in close_names("pad", ["add", "conv"])
    assert close_names("upsample", ["inverted", "upsample_x"]) == ["upsample_x"]  # 2 edits, 8 letters
    assert close_names("deconv", ["conv"]) == []


def test_unknown_block_error_in_a_file(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text("input: [3, 8, 8]\nnodes:\n  a: {block: attention, out: 4}\n")
    text = str(pytest.raises(ArchError, plan_model, str(path)).value)
    assert text.startswith(f"{path}:3:14: node 'a': unknown block 'attention'; blocks: act, ")


ROOT_BLOCK = {"root": {"inputs": ["x", "skip"], "params": {"out": None}, "nodes": {
    "cat": {"block": "concat", "from": ["x", "skip"]},
    "conv": {"block": "conv", "out": "out", "kernel": 1},
    "sum": {"block": "add", "from": ["conv", "skip"]}}}}
TWO_INPUTS = {"input": [4, 8, 8], "blocks": ROOT_BLOCK, "nodes": {
    "a": {"block": "conv", "out": 6}, "b": {"block": "conv", "out": 6, "dilation": 2, "from": "input"},
    "r": {"block": "root", "out": 6, "from": ["a", "b"]}, "pool": "global_pool"}}


def test_a_composite_block_takes_named_inputs():
    model = build_model(TWO_INPUTS).eval()
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        a, b = model.a(x), model.b(x)
        assert torch.allclose(model(x), (model.r.conv(torch.cat([a, b], 1)) + b).mean((2, 3)), atol=1e-6)
    assert "r.conv.conv.weight" in model.state_dict()
    from pipeline.analysis import analyse
    from pipeline.diagram import to_dot

    plan = plan_model(TWO_INPUTS)
    assert analyse(plan).nodes["r"].field.size == (5, 5)  # the larger of a's 3 and b's dilated 5
    text = to_dot(plan, expand=["r"])
    assert '"a" -> "r.cat"' in text and '"b" -> "r.cat"' in text and '"b" -> "r.sum"' in text


@pytest.mark.parametrize("change, expected", [
    ({"nodes": {"r": {"block": "root", "out": 6, "from": ["a"]}}}, "block 'root' takes 2 inputs (x, skip), got 1"),
    ({"nodes": {"r": {"block": "root", "out": 6}}}, "block 'root' takes 2 inputs (x, skip), got 1"),
    ({"nodes": {"b": {"block": "conv", "out": 6, "from": "input", "if": False},
                "r": {"block": "root", "out": 6, "from": ["a", "b"]}}},
     "'from' reads 'b', which its 'if:' leaves out here, as the block's input 'skip'"),
    ({"inputs": ["x"]}, "'inputs' must list two or more names"),
    ({"inputs": ["x", "x"]}, "input 'x' is named twice"),
    ({"inputs": ["x", "forward"]}, "input name 'forward' must be letters"),
    ({"inputs": ["x", "cat"]}, "'cat' is both an input and a node"),
])
def test_named_inputs_that_cannot_work_say_why(change, expected):
    spec = {**TWO_INPUTS, "blocks": {"root": {**ROOT_BLOCK["root"], **{k: v for k, v in change.items()
                                                                       if k == "inputs"}}},
            "nodes": {**TWO_INPUTS["nodes"], **change.get("nodes", {})}}
    assert expected in str(pytest.raises(ArchError, plan_model, spec).value)


def test_a_recursive_tree_with_a_root_of_named_inputs():
    """Deep Layer Aggregation's shape: a tree holds a smaller tree, and its root joins the two halves."""
    spec = {"input": [4, 8, 8], "blocks": {**ROOT_BLOCK, "tree": {"params": {"levels": 1}, "nodes": {
        "left": {"block": "tree", "levels": "levels - 1", "if": "levels > 1"},
        "leaf": {"block": "conv", "out": 4, "from": "input", "if": "levels == 1"},
        "right": {"block": "conv", "out": 4, "from": "${'left' if levels > 1 else 'leaf'}"},
        "join": {"block": "root", "out": 4, "from": ["right", "${'left' if levels > 1 else 'leaf'}"]}}}},
        "nodes": {"t": {"block": "tree", "levels": 3}}}
    names = [n for n, _ in build_model(spec).named_modules() if n.endswith(".join")]
    assert names == ["t.left.left.join", "t.left.join", "t.join"]


def test_the_readme_example_of_named_inputs_plans():
    import re

    import yaml

    text = README[README.index("A composite block of several inputs names them"):]
    doc = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))
    plan = plan_model({"input": [3, 16, 16], **doc})
    assert [n.inputs for n in plan.nodes][-1] == ("a", "b") and plan.out_shape == (64, 16, 16)
