"""Receptive field, effective stride, activation and training memory of a plan (pipeline/analysis.py)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from pipeline import build_model, plan_model
from pipeline.analysis import analyse
from pipeline.blocks import BLOCKS, Block, register
from pipeline.blocks.receptive import Field
from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "architectures"


def field_of(nodes: dict, shape=(3, 64, 64), node: str | None = None) -> Field:
    plan = plan_model({"input": list(shape), "nodes": nodes})
    a = analyse(plan)
    return a.nodes[node or plan.nodes[-1].name].field


def test_wavenet_kernel_2_dilations_1_to_512_twice_sees_2047_samples():
    f = field_of({"w": {"block": "wavenet", "layers": 10, "stacks": 2, "kernel": 2}}, (2, 5000))
    assert f.size == (2047,) and f.jump == (1,) and not f.whole


@pytest.mark.slow
def test_zoo_wavenet_classifier_reports_2047_before_pooling():
    data = analyse(plan_model(ZOO / "wavenet_classifier.yaml"))
    assert data.features_field.size == (2047,) and data.field.whole


@pytest.mark.parametrize("nodes, size, stride", [
    ({"a": {"block": "conv", "out": 4}, "b": {"block": "conv", "out": 4}}, 5, 1),
    ({"a": {"block": "conv", "out": 4, "kernel": 7, "stride": 2}, "p": {"block": "maxpool", "kernel": 3,
                                                                        "stride": 2, "padding": 1}}, 11, 4),
    ({"a": {"block": "conv", "out": 4, "dilation": 2}}, 5, 1),
    ({"a": {"block": "conv", "out": 4, "stride": 2}, "b": {"block": "conv", "out": 4, "dilation": 3}}, 15, 2),
    ({"p": {"block": "avgpool", "kernel": 2}, "a": {"block": "conv", "out": 4}}, 6, 2),
    ({"a": {"block": "conv", "out": 4, "kernel": 1}, "b": {"block": "conv", "out": 4, "kernel": 5, "from": "input"},
      "c": {"block": "concat", "from": ["a", "b"]}}, 5, 1),  # a merge takes the larger window
    ({"i": {"block": "inception", "b1": 4, "b2": [2, 4], "b3": [2, 4], "b4": 4}}, 5, 1),
    ({"r": {"block": "basic", "out": 8, "stride": 2}}, 7, 2),  # the shortcut does not add its stride again
])
def test_receptive_field_and_stride(nodes, size, stride):
    f = field_of(nodes)
    assert f.size == (size, size) and f.jump == (stride, stride)


def test_a_global_gate_does_not_make_a_local_path_global():
    """Squeeze-excitation style: features x sigmoid(gate from a global pool) keep their local field."""
    local, gate = Field((3, 3), (1, 1)), Field((3, 3), (1, 1), whole=True)
    assert local.union(gate) == gate.union(local) == local
    assert gate.union(gate).whole and Field((3, 3), (2, 2)).union(Field((5, 5), (1, 1))) == Field((5, 5), (2, 2))


def test_a_crop_to_the_last_step_keeps_its_window_and_flattening_one_position_adds_nothing():
    """A causal TCN's classifier reads the last time step: its field is the stack's, not the whole input;
    the support of a real gradient says the same."""
    spec = {"input": [1, 64], "nodes": {
        "a": {"block": "conv", "out": 4, "kernel": 3, "norm": "none", "act": "tanh"},
        "b": {"block": "conv", "out": 4, "kernel": 3, "dilation": 2, "norm": "none", "act": "tanh"},
        "last": {"block": "crop", "left": "in_shape[1] - 1"}, "flat": "flatten",
        "fc": {"block": "linear", "out": 2}}}
    plan = plan_model(spec)
    data = analyse(plan)
    assert data.nodes["fc"].field.size == (7,) and not data.nodes["fc"].field.whole
    from pipeline.analysis import as_json
    assert as_json(data, plan)["nodes"]["fc"]["sees_whole_input"] is False
    torch.manual_seed(0)
    x = torch.randn(1, 1, 64, requires_grad=True)
    build_model(spec)(x)[0, 0].backward()
    support = torch.nonzero(x.grad[0, 0])
    assert int(support.max() - support.min() + 1) <= 7  # zero padding: the last step's window is cut to 4
    flat = {"input": [1, 8, 8], "nodes": {"c": {"block": "conv", "out": 2}, "f": "flatten"}}
    assert analyse(plan_model(flat)).nodes["f"].field.whole  # a map flattened: every position


def test_composite_blocks_and_repeats_compose():
    blocks = {"pair": {"params": {"d": 1}, "nodes": {"a": {"block": "conv", "out": 4, "dilation": "d"},
                                                     "b": {"block": "conv", "out": 4}}}}
    plan = plan_model({"input": [3, 64, 64], "blocks": blocks,
                       "nodes": {"x": {"block": "pair", "d": 2, "repeat": 2}}})
    # each pair: 3x3 dilated 2 (5) then 3x3 (7); twice: 13
    assert analyse(plan).nodes["x"].field.size == (13, 13)


def test_zoo_receptive_fields_match_the_published_values():
    assert analyse(plan_model(ZOO / "resnet18.yaml", (3, 64, 64))).features_field.size == (435, 435)
    vgg = analyse(plan_model(ZOO / "vgg16.yaml")).features_field
    assert vgg.size == (212, 212) and vgg.jump == (32, 32)


def test_receptive_field_equals_the_support_of_a_real_gradient():
    """Independent check: which input pixels move the centre output of the real network."""
    nodes = {"a": {"block": "conv", "out": 3, "stride": 2, "norm": "none", "act": "tanh"},
             "b": {"block": "conv", "out": 3, "dilation": 2, "norm": "none", "act": "tanh"},
             "p": {"block": "avgpool", "kernel": 2},
             "c": {"block": "conv", "out": 1, "kernel": 3, "norm": "none", "act": "none"}}
    spec = {"input": [1, 64, 64], "nodes": nodes}
    f = analyse(plan_model(spec)).nodes["c"].field
    torch.manual_seed(0)
    net = build_model(spec).eval()
    x = torch.randn(1, 1, 64, 64, requires_grad=True)
    y = net(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows = torch.nonzero(x.grad[0, 0].abs().sum(1))
    cols = torch.nonzero(x.grad[0, 0].abs().sum(0))
    # by hand: 3 (3x3 s2), +2*2*2 (3x3 dilated 2) = 11, +1*2 (2x2 pool) = 13, +2*4 (3x3) = 21
    assert f.size == (int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)) == (21, 21)


def test_a_block_reports_its_own_receptive_field():
    class Wide(Block):
        def __init__(self, in_shape):
            super().__init__()

        def forward(self, x):
            return x

        def receptive_field(self, in_shape):
            return Field((9, 9), (3, 3))

    register("wide_rf_test")(Wide)
    try:
        f = field_of({"a": {"block": "conv", "out": 4, "stride": 2}, "w": "wide_rf_test"})
    finally:
        del BLOCKS["wide_rf_test"]
    assert f.size == (3 + 8 * 2, 3 + 8 * 2) and f.jump == (6, 6)


def test_activation_bytes_follow_batch_and_dtype():
    plan = plan_model(ZOO / "lenet5.yaml")
    fp32, bf16 = analyse(plan, batch=8), analyse(plan, batch=8, precision="bf16")
    first = plan.nodes[0]
    assert fp32.nodes[first.name].activation_bytes == 8 * math.prod(first.out_shape) * 4
    assert bf16.nodes[first.name].activation_bytes == 8 * math.prod(first.out_shape) * 2
    assert fp32.memory["weights"] == 4 * plan.params


def test_memory_parts_respond_to_optimizer_batch_and_precision():
    plan = plan_model(ZOO / "resnet20_cifar.yaml")
    sgd, adamw = analyse(plan, 4, "32", "sgd"), analyse(plan, 4, "32", "adamw")
    assert adamw.memory["optimizer_state"] == 2 * sgd.memory["optimizer_state"] == 8 * plan.params
    # activations scale with the batch; batch-norm statistics (per channel) do not
    assert 1.9 < analyse(plan, 8).saved_bytes / sgd.saved_bytes <= 2
    assert analyse(plan, 4, "bf16").saved_bytes < sgd.saved_bytes
    # at the worst point of backward: some activations still saved, some weight gradients already made
    at_peak = sgd.memory["saved_activations"] + sgd.memory["gradients"]
    assert max(sgd.saved_bytes, 4 * plan.params) <= at_peak < sgd.saved_bytes + 4 * plan.params
    assert sgd.train_memory_bytes == sum(sgd.memory.values())


def test_saved_activations_equal_what_real_autograd_keeps():
    """The meta-tensor count against a real CPU forward of the same net (each storage once)."""
    path = ZOO / "tutorial_squeezenet_cifar.yaml"
    batch = 4
    estimate = analyse(plan_model(path), batch)
    net = build_model(path).train()
    state = {t.untyped_storage().data_ptr() for t in [*net.parameters(), *net.buffers()]}
    saved = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in state:
            saved[s.data_ptr()] = s.nbytes()
        return t

    x = torch.randn(batch, 3, 32, 32)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(x)
    real = sum(n for ptr, n in saved.items() if ptr != x.untyped_storage().data_ptr())
    assert estimate.saved_bytes == real


def test_summary_json_and_table(capsys):
    lenet = str(ZOO / "lenet5.yaml")
    assert main(["summary", lenet, "--json", "--batch", "16", "--optimizer", "adamw"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["receptive_field"] == [32, 32] and data["stride"] == [4, 4]
    assert data["train_memory_bytes"] == sum(data["train_memory"].values()) > 0
    c1 = data["nodes"][0]
    assert c1["receptive_field"] == [5, 5] and c1["stride"] == [1, 1]
    assert c1["activation_bytes"] == 16 * 6 * 28 * 28 * 4
    assert data["nodes"][-1]["sees_whole_input"] is True
    assert main(["summary", lenet, "--batch", "16"]) == 0
    out = capsys.readouterr().out
    assert "RF" in out.splitlines()[1] and "receptive field: 32, stride 4" in out
    assert "training memory, batch 16, precision 32, sgd" in out


@pytest.mark.parametrize("args, words", [(["--batch", "0"], "--batch must be a positive integer"),
                                          (["--precision", "64"], "invalid choice: '64'")])
def test_bad_options_exit_2(args, words, capsys):
    assert main(["summary", str(ZOO / "lenet5.yaml"), *args]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1
