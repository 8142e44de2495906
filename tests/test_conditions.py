"""A node kept or left out by `if:`, and expressions that choose words: string literals, and/or/not,
`in`, and variables whose value is a word (issue 25.5)."""
from __future__ import annotations

import pytest
import torch

from pipeline import ArchError, build_model, plan_model

# RepVGG's block in one composite: the identity branch exists only where the block keeps its shape
REP = {"rep": {"params": {"out": None, "stride": 1}, "nodes": {
    "identity": {"block": "norm", "from": "input", "if": "stride == 1 and in_channels == out"},
    "conv_kxk": {"block": "conv", "out": "out", "stride": "stride", "act": "none", "from": "input"},
    "conv_1x1": {"block": "conv", "out": "out", "kernel": 1, "stride": "stride", "act": "none", "from": "input"},
    "sum": {"block": "add", "from": ["identity", "conv_kxk", "conv_1x1"]},
    "act": {"block": "act", "kind": "relu"}}}}


def error(spec: dict, **kwargs) -> str:
    return str(pytest.raises(ArchError, plan_model, spec, **kwargs).value)


def test_a_merge_drops_an_input_left_out_by_its_condition():
    spec = {"input": [8, 8, 8], "blocks": REP, "nodes": {
        "down": {"block": "rep", "out": 16, "stride": 2},  # shape changes: two branches
        "keep": {"block": "rep", "out": 16}}}  # shape kept: three
    model = build_model(spec)
    assert not hasattr(model.down, "identity") and isinstance(model.keep.identity.norm, torch.nn.BatchNorm2d)
    plan = plan_model(spec)
    assert [n.inputs for n in plan.nodes] == [("input",), ("down",)]
    sub = {n.name: n.inputs for n in plan.nodes[0].reps[0][1].nodes}
    assert sub["down.sum"] == ("down.conv_kxk", "down.conv_1x1")
    x = torch.randn(2, 8, 8, 8)
    model.eval()
    with torch.no_grad():
        y = model.down(x)
        branches = model.down.conv_kxk(x) + model.down.conv_1x1(x)
        assert torch.allclose(y, torch.relu(branches))
        z = model.keep(y)
        assert torch.allclose(z, torch.relu(model.keep.identity(y) + model.keep.conv_kxk(y) + model.keep.conv_1x1(y)))


def test_a_chain_passes_over_a_node_left_out():
    spec = {"input": [3, 8, 8], "vars": {"use_se": False, "p": 0.0},
            "nodes": {"c": {"block": "conv", "out": 8},
                      "se": {"block": "se", "if": "$use_se"},
                      "drop": {"block": "dropout", "p": "p", "if": "p > 0"},
                      "pool": "global_pool", "fc": {"block": "linear", "out": 2}}}
    plan = plan_model(spec)
    assert [(n.name, n.inputs) for n in plan.nodes] == [("c", ("input",)), ("pool", ("c",)), ("fc", ("pool",))]
    on = plan_model(spec, use_se=True, p=0.1)
    assert [n.name for n in on.nodes] == ["c", "se", "drop", "pool", "fc"]
    assert on.params > plan.params and "se.fc1.weight" in build_model(spec, use_se=True).state_dict()


def test_an_aux_head_can_be_switched_out_of_the_net():
    spec = {"input": [3, 16, 16], "vars": {"heads": False},
            "nodes": {"c": {"block": "conv", "out": 8},
                      "head_pool": {"block": "global_pool", "if": "heads"},
                      "head": {"block": "linear", "out": 4, "aux": 0.3, "if": "heads"},
                      "pool": {"block": "global_pool", "from": "c"}, "fc": {"block": "linear", "out": 4}}}
    assert plan_model(spec).aux == {} and plan_model(spec, heads=True).aux == {"head": 0.3}


def test_a_node_left_out_is_still_checked_as_written():
    base = {"input": [3, 8, 8], "nodes": {"c": {"block": "conv", "out": 8}}}
    text = error({**base, "nodes": {**base["nodes"], "x": {"block": "conv", "out": 4, "strid": 2, "if": False}}})
    assert "block 'conv' has no argument 'strid'" in text and "did you mean 'stride'" in text
    text = error({**base, "nodes": {**base["nodes"], "x": {"block": "covn", "if": False}}})
    assert "unknown block 'covn'" in text
    text = error({**base, "nodes": {**base["nodes"], "x": {"block": "add", "from": ["c", "zz"], "if": False}}})
    assert "'from' refers to 'zz', which is not a node defined before this one" in text and "'x'" not in text[-40:]
    off = {"if": False}
    for node, expected in [({"block": "conv", "out": 4, "from": "x"}, "'from' refers to the node itself"),
                           ({"block": "conv", "out": 4, "from": ["c", "input"]}, "takes one input, got 2"),
                           ({"block": "conv", "out": 4, "repeat": -3}, "'repeat' must be between 0 and"),
                           ({"block": "conv", "out": 4, "repeat": "nn"}, "undefined variable 'nn'"),
                           ({"block": "linear", "out": 4, "aux": -1}, "'aux' loss weight must be positive or 0"),
                           ({"block": "conv"}, "block 'conv' needs argument 'out'")]:
        assert expected in error({**base, "nodes": {**base["nodes"], "x": {**node, **off}}}), node
    composite = {"u": {"params": {"w": None}, "nodes": {"c": {"block": "conv", "out": "w"}}}}
    text = error({**base, "blocks": composite, "nodes": {**base["nodes"], "x": {"block": "u", **off}}})
    assert "node 'x': block 'u' needs argument 'w'" in text


@pytest.mark.parametrize("nodes, expected", [
    ({"a": {"block": "conv", "out": 4, "if": False}, "b": {"block": "conv", "out": 4, "from": "a"}},
     "node 'b': 'from' reads 'a', which its 'if:' leaves out here; only a merge"),
    ({"a": {"block": "conv", "out": 4, "if": False}, "b": {"block": "add", "from": ["a"]}},
     "every input in 'from' is left out here by its 'if:' (a)"),
    ({"a": {"block": "conv", "out": 4}, "b": {"block": "conv", "out": 4, "from": "a", "if": "1 > 2"},
      "c": {"block": "conv", "out": 4, "from": "input"}},
     "node 'a': node is not used here: the nodes that read it (b) are left out by their 'if:'"),
    ({"a": {"block": "conv", "out": 4, "if": False}}, "no node is left: every node's 'if:' is false here"),
    ({"a": {"block": "conv", "out": 4, "if": 1}}, "'if' (the condition for this node): expected true or false, got 1"),
    ({"a": {"block": "conv", "out": 4, "if": "ture"}}, "undefined variable 'ture'"),
    ({"a": {"block": "conv", "out": 4, "if": "'yes'"}}, "expected true or false, got 'yes' = 'yes'"),
])
def test_conditions_that_cannot_work_say_why(nodes, expected):
    assert expected in error({"input": [3, 8, 8], "nodes": nodes})


def test_condition_errors_name_their_node_at_every_depth():
    text = error({"input": [3, 8, 8], "vars": {"use_se": "ture"},
                  "nodes": {"a": {"block": "conv", "out": 4}, "b": {"block": "conv", "out": 4, "if": "use_se"}}})
    assert "node 'b': 'if' (the condition for this node): expected true or false, got use_se = 'ture'" in text
    spec = {"input": [3, 8, 8], "blocks": {
        "inner": {"nodes": {"x": {"block": "conv", "out": 4, "if": "nope"}}},
        "outer": {"nodes": {"p": {"block": "inner"}}}}, "nodes": {"a": {"block": "outer"}}}
    assert "node 'a.p.x': 'if'" in error(spec)


def test_a_node_read_only_by_nodes_left_out_says_how_to_pass_it_on():
    spec = {"input": [8, 8, 8], "blocks": {"u": {"params": {"se": False}, "nodes": {
        "c1": {"block": "conv", "out": 8}, "s": {"block": "se", "if": "se"},  # s reads c1 by the chain
        "sum": {"block": "add", "from": ["s", "input"]}}}}, "nodes": {"a": {"block": "u"}}}
    text = error(spec)
    assert "node 'a.c1': node is not used here: the nodes that read it (s) are left out" in text
    assert "write 'repeat: 0' there instead of 'if:'" in text


def test_dollars_inside_string_literals_are_kept():
    spec = {"input": [3, 8, 8], "vars": {"act": "relu"},
            "nodes": {"c": {"block": "conv", "out": 4, "act": "${'$act'}"}}}
    assert "got '$act'" in error(spec)  # the word as written, not the variable's value


def test_boolean_words_cannot_be_variable_names():
    assert "variable name 'true' is reserved" in error(
        {"input": [3, 8, 8], "vars": {"true": 3}, "nodes": {"c": {"block": "conv", "out": 4}}})


def test_an_undefined_name_in_a_file_without_vars_says_to_declare_it():
    text = error({"input": [3, 8, 8], "nodes": {"c": {"block": "conv", "out": "width"}}})
    assert "undefined variable 'width' (no variables are defined here; declare it under 'vars:')" in text


def test_an_output_left_out_is_an_error():
    spec = {"input": [3, 8, 8], "blocks": {"b": {"output": "x", "nodes": {
        "x": {"block": "conv", "out": 4, "if": False}, "y": {"block": "conv", "out": 4, "from": "input"}}}},
        "nodes": {"u": {"block": "b"}}}
    assert "'output' names 'x', which its 'if:' leaves out here" in error(spec)


def test_string_literals_choose_a_block_type_and_an_activation():
    spec = {"input": [16, 8, 8], "vars": {"depth": 18, "fast": True},
            "nodes": {"u": {"block": "${'bottleneck' if depth >= 50 else 'basic'}", "out": 16},
                      "c": {"block": "conv", "out": 8, "act": "${'relu' if fast and depth < 50 else 'gelu'}"}}}
    assert plan_model(spec).nodes[0].block == "basic" and isinstance(build_model(spec).c.act, torch.nn.ReLU)
    assert plan_model(spec, depth=50).nodes[0].block == "bottleneck"
    assert isinstance(build_model(spec, depth=50).c.act, torch.nn.GELU)


def test_a_variable_whose_value_is_a_word_is_that_word_in_an_expression():
    spec = {"input": [3, 8, 8], "vars": {"act": "silu", "plain": False},
            "nodes": {"c": {"block": "conv", "out": 8, "act": "${'none' if plain else act}",
                            "bias": "act in ['none', 'identity'] or not plain and act == 'tanh'"}}}
    model = build_model(spec)
    assert isinstance(model.c.act, torch.nn.SiLU) and model.c.conv.bias is None
    model = build_model(spec, act="tanh")
    assert isinstance(model.c.act, torch.nn.Tanh) and model.c.conv.bias is not None
    assert isinstance(build_model(spec, plain=True).c.act, torch.nn.Identity)


@pytest.mark.parametrize("vars_, out, expected", [
    # a word used as a number is most likely a misspelt variable: say so, with the closest names
    ({"width": 8, "w2": "wdith"}, "w2 * 2", "'w2' is the word 'wdith', not a number (did you mean 'width'?)"),
    ({"width": 8, "w2": "wdith"}, "w2", "expected an integer, got w2 = 'wdith' (did you mean 'width'?)"),
    ({"act": "relu"}, "'relu' + 1", "'relu' is a word, not a number"),
    ({"act": "relu"}, "4 if act < 3 else 8", "'act' is the word 'relu', not a number"),
    ({"act": "relu"}, "4 if act else 8", "'act' is the word 'relu', not a condition"),
    ({"k": 2}, "4 if k in 3 else 8", "'3' is not a list"),
    ({"k": 2}, "4 if k < 'a' else 8", "'a' is a word, not a number"),
    # a word against a number or true/false is a mistake, not false
    ({"use_se": "ture"}, "4 if use_se == true else 8", "'use_se' is the word 'ture', compared with true: a word "
                                                      "equals only a word"),
    ({"act": "relu"}, "4 if act != 3 else 8", "'act' is the word 'relu', compared with 3"),
    ({"act": "relu"}, "4 if act in [1, 2] else 8", "'act' is the word 'relu', compared with 1"),
    # every name must exist, also where evaluation does not go
    ({"deep": False, "stride": 1}, "4 if deep and stirde == 1 else 8", "undefined variable 'stirde' (did you mean "
                                                                      "'stride'?)"),
    ({"deep": True}, "4 if deep else widht", "undefined variable 'widht'"),
])
def test_words_where_numbers_or_conditions_belong_are_errors(vars_, out, expected):
    assert expected in error({"input": [3, 8, 8], "vars": vars_, "nodes": {"c": {"block": "conv", "out": out}}})


def test_an_expression_in_a_word_place_is_evaluated_not_taken_as_text():
    # `${...}` in a place that takes a word used to give the expression's own text
    spec = {"input": [3, 8, 8], "vars": {"k": 1},
            "nodes": {"c": {"block": "conv", "out": 4, "norm": "${'batch' if k > 0 else 'none'}"}}}
    assert isinstance(build_model(spec).c.norm, torch.nn.BatchNorm2d)
    assert "expected one of" in error({**spec, "nodes": {"c": {"block": "conv", "out": 4, "norm": "${'bach'}"}}})


def test_true_and_false_are_known_in_expressions():
    spec = {"input": [3, 8, 8], "vars": {"k": 1},
            "nodes": {"c": {"block": "conv", "out": "4 if true else 8", "bias": "false or k == 1"}}}
    model = build_model(spec)
    assert model.c.conv.out_channels == 4 and model.c.conv.bias is not None


@pytest.mark.parametrize("defaults", [{"*": {"if": False}}, {"conv": {"if": "true"}}, {"*": {"repeat": 2}}])
def test_node_keys_in_defaults_are_refused_even_for_every_block(defaults):
    # "*" skips arguments a block lacks: without this check `"*": {if: false}` would do nothing, silently
    text = error({"input": [3, 8, 8], "defaults": defaults, "nodes": {"c": {"block": "conv", "out": 4}}})
    assert "is a node key, not an argument of" in text and "go on nodes" in text


def _readme_examples() -> list[dict]:
    import re
    from pathlib import Path

    import yaml

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    text = text[text.index("<!-- conditions-example -->"):]
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)[:2]
    return [yaml.safe_load("\n".join(line[2:] for line in b.splitlines())) for b in blocks]


def test_the_readme_examples_of_if_and_repeat_zero_do_what_the_text_says():
    rep, se = _readme_examples()
    params = {"out": None, "stride": 1, "use_se": True}
    spec = {"input": [8, 8, 8], "blocks": {"rep": {"params": params, "nodes": rep},
                                            "seu": {"params": params, "nodes": se}},
            "nodes": {"a": {"block": "rep", "out": 16, "stride": 2}, "b": {"block": "rep", "out": 16},
                      "c": {"block": "seu", "out": 16}, "d": {"block": "seu", "out": 16, "use_se": False}}}
    model = build_model(spec)
    assert not hasattr(model.a, "identity") and hasattr(model.b, "identity")
    assert hasattr(model.c.se, "fc1") and not any(n.startswith("se.") for n, _ in model.d.named_parameters())
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model.d.eval()(x), model.d.conv(x) + x)  # the conv's output passed on


def test_a_block_may_use_itself_when_a_condition_ends_it():
    # a DLA-style tree: each level holds a smaller tree until `levels` runs out
    spec = {"input": [4, 8, 8], "blocks": {"tree": {"params": {"levels": 1}, "nodes": {
        "a": {"block": "conv", "out": 4},
        "sub": {"block": "tree", "levels": "levels - 1", "if": "levels > 1"},
        "b": {"block": "conv", "out": 4},
        "sum": {"block": "add", "from": ["a", "b"]}}}},
        "nodes": {"t": {"block": "tree", "levels": 3}}}
    model = build_model(spec)
    convs = sorted(n.rsplit(".", 2)[0] for n, _ in model.named_parameters() if n.endswith("conv.weight"))
    assert convs == ["t.a", "t.b", "t.sub.a", "t.sub.b", "t.sub.sub.a", "t.sub.sub.b"]
    assert plan_model(spec, ).params == plan_model({**spec, "nodes": {"t": {"block": "tree", "levels": 1}}}).params * 3
    text = error({**spec, "nodes": {"t": {"block": "tree", "levels": 40}}})
    assert "node 't.sub': block 'tree' uses itself more than 16 deep" in text
