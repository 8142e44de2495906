"""The blocks and options of 'language reach': each one against torchvision's/timm's own layer where there
is one (same parameters, same outputs once weights are copied in order), plus its located errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline import ArchError, build_model, plan_model


def one(block: str, shape, **args) -> dict:
    return {"input": list(shape), "nodes": {"x": {"block": block, **args}}}


def copy_in_order(dst: torch.nn.Module, src: torch.nn.Module) -> None:
    """Copy ``src``'s state into ``dst`` tensor by tensor, in order, as the converter does."""
    ours, theirs = dst.state_dict(), src.state_dict()
    assert [tuple(v.shape) for v in ours.values()] == [tuple(v.shape) for v in theirs.values()]
    dst.load_state_dict(dict(zip(ours, theirs.values())))


def same(ours: torch.nn.Module, reference: torch.nn.Module, shape) -> None:
    ours.eval(), reference.eval()
    copy_in_order(ours, reference)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)


def error(spec) -> str:
    with pytest.raises(ArchError) as info:
        plan_model(spec)
    return str(info.value)


# ---------------------------------------------------------------------------------------------
# mul, se, acts


def test_mul_broadcasts_a_flat_gate_over_a_map():
    spec = {"input": [4, 5, 5], "nodes": {
        "gate": {"block": "global_pool"},  # (4,): counts as (4, 1, 1)
        "m": {"block": "mul", "from": ["input", "gate"]}}}
    model = build_model(spec)
    x = torch.randn(2, 4, 5, 5)
    assert plan_model(spec).out_shape == (4, 5, 5)
    torch.testing.assert_close(model(x), x * x.mean((2, 3), keepdim=True))


def test_mul_of_incompatible_shapes_is_a_located_error():
    text = error({"input": [4, 5, 5], "nodes": {
        "a": {"block": "conv", "out": 8, "kernel": 1},
        "m": {"block": "mul", "from": ["input", "a"]}}})
    assert "node 'm'" in text and "broadcast" in text and "(4, 5, 5) and (8, 5, 5)" in text


@pytest.mark.parametrize("act, gate, divisor", [("relu", "sigmoid", 1), ("silu", "hardsigmoid", 8)])
def test_se_equals_torchvision_squeeze_excitation(act, gate, divisor):
    from torchvision.ops import SqueezeExcitation

    layers = {"relu": torch.nn.ReLU, "silu": torch.nn.SiLU, "sigmoid": torch.nn.Sigmoid,
              "hardsigmoid": torch.nn.Hardsigmoid}
    channels = 72
    width = channels // 4 if divisor == 1 else 24  # torchvision MobileNetV3: make_divisible(72 // 4, 8) = 24
    reference = SqueezeExcitation(channels, width, layers[act], layers[gate])
    ours = build_model(one("se", (channels, 7, 7), ratio=0.25, divisor=divisor, act=act, gate=gate))
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters())
    same(ours, reference, (channels, 7, 7))


def test_se_explicit_width_and_keys():
    model = build_model(one("se", (32, 4, 4), width=5))
    assert [k for k in model.state_dict()] == ["x.fc1.weight", "x.fc1.bias", "x.fc2.weight", "x.fc2.bias"]
    assert model.x.fc1.out_channels == 5


@pytest.mark.parametrize("kind", ["sigmoid", "hardsigmoid", "silu", "hardswish", "gelu", "mish"])
def test_gate_and_modern_activations(kind):
    x = torch.randn(2, 3, 4, 4)
    expected = torch.sigmoid(x) if kind == "sigmoid" else getattr(F, kind)(x)
    torch.testing.assert_close(build_model(one("act", (3, 4, 4), kind=kind))(x), expected)


# ---------------------------------------------------------------------------------------------
# [h, w] sizes


def test_factorized_kernels_keep_the_size_and_pools_take_h_w():
    spec = {"input": [8, 17, 17], "nodes": {
        "a": {"block": "conv", "out": 8, "kernel": [1, 7]},
        "b": {"block": "conv", "out": 8, "kernel": [7, 1], "dilation": [2, 1]},
        "p": {"block": "avgpool", "kernel": [3, 1], "stride": [2, 1], "padding": [1, 0]}}}
    model = build_model(spec)
    assert model.a.conv.kernel_size == (1, 7) and model.a.conv.padding == (0, 3)
    assert model.b.conv.padding == (6, 0)
    assert plan_model(spec).out_shape == (8, 9, 17) == tuple(model(torch.randn(2, 8, 17, 17)).shape[1:])


@pytest.mark.parametrize("block, args, arg", [
    ("conv", {"out": 4, "kernel": [1, 7, 3]}, "kernel"),
    ("conv", {"out": 4, "stride": [1]}, "stride"),
    ("maxpool", {"kernel": [3, 3], "padding": [1, 2]}, "padding"),
    ("conv_transpose", {"out": 4, "kernel": [0, 2]}, "kernel"),
])
def test_wrong_h_w_is_reported_at_the_argument(tmp_path, block, args, arg):
    path = tmp_path / "net.yaml"
    fields = ", ".join(f"{k}: {v}" for k, v in args.items())
    path.write_text(f"input: [3, 8, 8]\nnodes:\n  x: {{block: {block}, {fields}}}\n")
    text = error(str(path))
    column = path.read_text().splitlines()[2].index(f"{arg}:") + len(arg) + 3  # the value, 1-based
    assert text.startswith(f"{path}:3:{column}: node 'x': '{arg}'"), text


# ---------------------------------------------------------------------------------------------
# MBConv family against torchvision


def test_inverted_with_se_is_torchvision_mbconv():
    from functools import partial

    from torchvision.models.efficientnet import MBConv, MBConvConfig

    reference = MBConv(MBConvConfig(6, 5, 2, 24, 40, 1), 0.0, partial(torch.nn.BatchNorm2d, eps=1e-3))
    ours = build_model(one("inverted", (24, 14, 14), out=40, expand=6, expand_divisor=8, kernel=5, stride=2,
                           act="silu", se=0.25, se_act="silu", norm_eps=1e-3))
    same(ours, reference, (24, 14, 14))


def test_inverted_mobilenet_v3_options_are_torchvision_block():
    from functools import partial

    from torchvision.models.mobilenetv3 import InvertedResidual, InvertedResidualConfig

    cnf = InvertedResidualConfig(40, 5, 120, 40, True, "HS", 1, 1, 1.0)
    reference = InvertedResidual(cnf, partial(torch.nn.BatchNorm2d, eps=1e-3, momentum=0.01))
    ours = build_model(one("inverted", (40, 7, 7), out=40, hidden=120, kernel=5, act="hardswish", se=0.25,
                           se_base="hidden", se_divisor=8, se_gate="hardsigmoid", norm_eps=1e-3))
    same(ours, reference, (40, 7, 7))


@pytest.mark.parametrize("expand, cin, out, stride", [(4, 24, 48, 2), (1, 24, 24, 1)])
def test_fused_inverted_is_torchvision_fused_mbconv(expand, cin, out, stride):
    from functools import partial

    from torchvision.models.efficientnet import FusedMBConv, FusedMBConvConfig

    reference = FusedMBConv(FusedMBConvConfig(expand, 3, stride, cin, out, 1), 0.0,
                            partial(torch.nn.BatchNorm2d, eps=1e-3))
    ours = build_model(one("fused_inverted", (cin, 8, 8), out=out, expand=expand, stride=stride, norm_eps=1e-3))
    same(ours, reference, (cin, 8, 8))


def test_bottleneck_se_is_timm_seresnet_bottleneck():
    timm = pytest.importorskip("timm")
    net = timm.create_model("seresnet50", pretrained=False)
    reference = net.layer1[0]  # 64 -> 256, projection shortcut
    ours = build_model(one("bottleneck", (64, 8, 8), out=256, se=1 / 16))
    same(ours, reference, (64, 8, 8))


# ---------------------------------------------------------------------------------------------
# stochastic depth and layer scale


def test_drop_path_drops_whole_samples_in_training_only():
    torch.manual_seed(0)
    model = build_model(one("drop_path", (3, 4, 4), p=0.5)).train()
    x = torch.ones(400, 3, 4, 4)
    y = model(x)
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}  # dropped, or kept and scaled by 1 / (1 - p)
    assert (per_sample == per_sample[:, :1]).all()  # a whole sample at once
    assert 0.35 < (per_sample[:, 0] == 0).float().mean() < 0.65
    assert torch.equal(model.eval()(x), x)


@pytest.mark.parametrize("block", ["basic", "preact", "wide", "inverted"])
def test_every_residual_block_takes_drop_path_on_its_branch(block):
    """A dropped branch leaves the sample's shortcut alone (identity here); evaluation never drops."""
    torch.manual_seed(0)
    model = build_model(one(block, (8, 4, 4), out=8, drop_path=0.5)).train()
    for m in model.modules():  # deterministic branch: batch norm in evaluation mode
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    x = torch.randn(200, 8, 4, 4)
    with torch.no_grad():
        y = model(x)
        shortcut_only = x.relu() if block == "basic" else x  # basic's activation comes after the join
        branch_dropped = [torch.equal(a, b) for a, b in zip(y, shortcut_only)]
        assert 0.3 < sum(branch_dropped) / len(x) < 0.7
        assert not any(torch.equal(a, b) for a, b in zip(model.eval()(x), x))


def test_depth_linear_drop_path_rate_is_an_expression():
    spec = {"input": [8, 4, 4], "vars": {"rate": 0.2, "blocks": 4},
            "nodes": {"stage": {"block": "inverted", "out": 8, "expand": 2, "repeat": 4,
                                "drop_path": "rate * i / blocks"}}}
    model = build_model(spec)
    assert [m.drop_path for m in model.stage] == pytest.approx([0.0, 0.05, 0.1, 0.15])


def test_layer_scale_starts_at_init_whatever_the_init_scheme():
    spec = {"input": [6, 3, 3], "init": "kaiming", "nodes": {"ls": {"block": "layer_scale", "init": 1e-6}}}
    model = build_model(spec)
    assert model.ls.scale.shape == (6, 1, 1)
    assert torch.all(model.ls.scale == 1e-6)


def test_drop_path_rate_out_of_range_is_located():
    assert "'drop_path' must be in [0, 1), got 1.5" in error(one("inverted", (8, 4, 4), out=8, drop_path=1.5))


# ---------------------------------------------------------------------------------------------
# channels


def test_channel_shuffle_equals_torchvision():
    from torchvision.models.shufflenetv2 import channel_shuffle

    x = torch.randn(2, 12, 3, 3)
    torch.testing.assert_close(build_model(one("channel_shuffle", (12, 3, 3), groups=3))(x), channel_shuffle(x, 3))


def test_split_and_slice_select_channels():
    spec = {"input": [8, 2, 2], "nodes": {
        "left": {"block": "split", "index": 0, "from": "input"},
        "right": {"block": "split", "index": 1, "from": "input"},
        "mid": {"block": "slice", "start": 2, "stop": -2, "from": "input"},
        "cat": {"block": "concat", "from": ["right", "left", "mid"]}}}
    x = torch.randn(2, 8, 2, 2)
    torch.testing.assert_close(build_model(spec)(x), torch.cat([x[:, 4:], x[:, :4], x[:, 2:6]], 1))


@pytest.mark.parametrize("block, args, words", [
    ("split", {"index": 2}, ["'index' must be between 0 and 1"]),
    ("split", {"index": 0, "parts": 3}, ["cannot split 8 channels into 3 equal parts"]),
    ("split", {"index": 0, "sizes": [4, 6]}, ["add up to the input's 8 channels"]),
    ("slice", {"start": 6, "stop": 12}, ["goes beyond the input's 8 channels"]),
    ("channel_pad", {"out": 4}, ["cannot reduce channels (8 -> 4)"]),
    ("channel_shuffle", {"groups": 3}, ["divisor of the 8 input channels"]),
])
def test_channel_blocks_errors(block, args, words):
    text = error(one(block, (8, 2, 2), **args))
    assert "node 'x'" in text and all(w in text for w in words), text


def test_channel_pad_after_subsampling_is_option_a():
    from pipeline.blocks.residual import PadShortcut

    spec = {"input": [4, 6, 6], "nodes": {"sub": {"block": "maxpool", "kernel": 1, "stride": 2},
                                          "pad": {"block": "channel_pad", "out": 8}}}
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(build_model(spec)(x), PadShortcut(4, 2, 2)(x))


# ---------------------------------------------------------------------------------------------
# spatial


def test_causal_pad_then_conv_never_sees_the_future():
    spec = {"input": [1, 16], "nodes": {"pad": {"block": "pad", "left": 4},
                                        "conv": {"block": "conv", "out": 1, "kernel": 3, "dilation": 2, "padding": 0,
                                                 "norm": "none", "act": "none"}}}
    model = build_model(spec).eval()
    x = torch.randn(1, 1, 16)
    y = model(x)
    x2 = x.clone()
    x2[..., 10:] += 1.0  # change the future of t = 9
    assert y.shape == (1, 1, 16)
    torch.testing.assert_close(model(x2)[..., :10], y[..., :10])


def test_pad_and_crop_per_side():
    spec = {"input": [2, 5, 6], "nodes": {"p": {"block": "pad", "left": 1, "right": 2, "top": 3},
                                          "c": {"block": "crop", "left": 1, "right": 2, "top": 3}}}
    x = torch.randn(2, 2, 5, 6)
    model = build_model(spec)
    assert plan_model(spec).nodes[0].out_shape == (2, 8, 9)
    torch.testing.assert_close(model(x), x)


@pytest.mark.parametrize("block, args, words", [
    ("pad", {"top": 1}, ["a 1-D input has no 'top' side"]),
    ("crop", {"left": 5, "right": 3}, ["nothing would be left"]),
    ("upsample", {}, ["exactly one of 'scale' and 'size'"]),
    ("upsample", {"scale": [2, 2]}, ["'scale' must be a positive number or a list of 1"]),
])
def test_spatial_block_errors(block, args, words):
    text = error(one(block, (3, 8), **args))
    assert "node 'x'" in text and all(w in text for w in words), text


def test_upsample_and_conv_transpose_shapes():
    x = torch.randn(2, 3, 4, 5)
    up = build_model(one("upsample", (3, 4, 5), size=[8, 7], mode="bilinear"))
    torch.testing.assert_close(up(x), F.interpolate(x, size=(8, 7), mode="bilinear", align_corners=False))
    spec = one("conv_transpose", (3, 4, 5), out=6, kernel=3, stride=2, padding=1, output_padding=1)
    assert plan_model(spec).out_shape == (6, 8, 10)
    assert plan_model(spec).params == 3 * 6 * 9 + 2 * 6  # weights, norm (no bias before a norm)


# ---------------------------------------------------------------------------------------------
# export


NEW_BLOCKS = {"input": [8, 8, 8], "nodes": {
    "a": {"block": "conv", "out": 16, "kernel": [1, 3]},
    "g": {"block": "global_pool"},
    "m": {"block": "mul", "from": ["a", "g"]},
    "se": {"block": "se", "act": "silu", "gate": "hardsigmoid"},
    "ls": {"block": "layer_scale", "init": 0.5},
    "dp": {"block": "drop_path"},
    "sh": {"block": "channel_shuffle", "groups": 4},
    "s0": {"block": "split", "index": 1},
    "sl": {"block": "slice", "start": 1},
    "cp": {"block": "channel_pad", "out": 12, "side": "both"},
    "pd": {"block": "pad", "left": 2, "top": 1, "mode": "replicate"},
    "cr": {"block": "crop", "right": 1, "bottom": 1},
    "up": {"block": "upsample", "scale": 2, "mode": "bilinear"},
    "ct": {"block": "conv_transpose", "out": 8, "act": "gelu"},
    "inv": {"block": "inverted", "out": 8, "expand": 4, "se": 0.25, "act": "hardswish", "drop_path": 0.1},
    "fi": {"block": "fused_inverted", "out": 8, "expand": 2, "act": "mish"},
    "gp": {"block": "global_pool"}}}


def test_every_new_block_exports_to_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from pipeline.export import export

    model = build_model(NEW_BLOCKS).eval()
    path = export(model, "onnx", tmp_path / "net.onnx")
    x = torch.randn(3, 8, 8, 8)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"input": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(y), model(x).detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_every_new_block_compiles_without_graph_breaks():
    torch._dynamo.reset()
    model = build_model(NEW_BLOCKS)
    compiled = torch.compile(model, fullgraph=True, backend="eager")  # dynamo's tracing, no code generation
    x = torch.randn(2, 8, 8, 8)
    for mode in (True, False):
        model.train(mode)
        torch.manual_seed(0)
        got = compiled(x)
        torch.manual_seed(0)
        torch.testing.assert_close(got, model(x), atol=1e-5, rtol=1e-5)
