"""Behaviour of individual blocks beyond shapes: residual identities, causality, shortcuts."""
from __future__ import annotations

import pytest
import torch

from pipeline import ArchError, build_model
from pipeline.blocks.dilated import WaveNet
from pipeline.blocks.depthwise import InvertedResidual
from pipeline.blocks.residual import Basic, Bottleneck
from pipeline.errors import BlockError


def test_zero_init_makes_a_residual_block_start_as_relu_of_its_shortcut():
    for block in (Basic((8, 6, 6), out=8, zero_init=True), Bottleneck((16, 6, 6), out=16, zero_init=True)):
        block.init_weights()
        block.train()
        x = torch.randn(2, *(8 if isinstance(block, Basic) else 16, 6, 6))
        assert torch.allclose(block(x), torch.relu(x))


@pytest.mark.parametrize("norm", ["batch", "group", "layer", "layer2d", "instance"])
def test_zero_init_zeroes_the_last_scale_of_any_norm(norm):
    for block in (Basic((8, 6, 6), out=8, zero_init=True, norm=norm),
                  Bottleneck((16, 6, 6), out=16, zero_init=True, norm=norm)):
        block.init_weights()
        assert not block.last_norm().weight.any(), norm
        x = torch.randn(2, block.last_norm().weight.numel(), 6, 6)
        assert torch.allclose(block.train()(x), torch.relu(x)), norm  # starts as relu(shortcut)


def test_zero_init_without_a_norm_is_refused_where_it_is_written(tmp_path):
    arch = tmp_path / "net.yaml"
    arch.write_text("input: [3, 8, 8]\nnodes:\n  stem: {block: conv, out: 8}\n"
                    "  res: {block: basic, out: 8, norm: none, zero_init: true}\n")
    with pytest.raises(ArchError) as err:
        build_model(str(arch))
    assert "net.yaml:4" in str(err.value) and "res" in str(err.value) and "zero_init" in str(err.value)


def test_pad_shortcut_has_no_parameters_and_zero_pads_new_channels():
    block = Basic((4, 8, 8), out=8, stride=2, shortcut="pad")
    conv_params = sum(p.numel() for n, p in block.named_parameters() if not n.startswith("shortcut"))
    assert sum(p.numel() for p in block.parameters()) == conv_params
    x = torch.randn(1, 4, 8, 8)
    short = block.shortcut(x)
    assert short.shape == (1, 8, 4, 4)
    assert torch.equal(short[:, :4], x[:, :, ::2, ::2]) and not short[:, 4:].any()


def test_identity_shortcut_refuses_a_shape_change():
    with pytest.raises(BlockError, match="shortcut 'identity' needs equal channels"):
        Basic((8, 8, 8), out=16, stride=2, shortcut="identity")


@pytest.mark.parametrize("stride, cin, cout, residual", [(1, 8, 8, True), (2, 8, 8, False), (1, 8, 16, False)])
def test_inverted_residual_adds_its_input_only_when_shapes_match(stride, cin, cout, residual):
    assert InvertedResidual((cin, 8, 8), out=cout, stride=stride).use_residual is residual


def test_wavenet_is_causal_and_sees_its_receptive_field():
    torch.manual_seed(0)
    net = WaveNet((2, 64), layers=4, channels=8, kernel=2).eval()
    x = torch.randn(1, 2, 64)
    y = net(x)
    t = 40
    changed = x.clone()
    changed[..., t] += 10.0
    diff = (net(changed) - y).abs().sum(1)[0]
    assert diff[:t].max() == 0  # nothing before t depends on the input at t
    receptive = 1 + (2 - 1) * (1 + 2 + 4 + 8)  # 16 samples
    assert diff[t] > 0 and diff[t + receptive - 1] > 0 and diff[t + receptive:].max() == 0


def test_wavenet_refuses_images():
    with pytest.raises(BlockError, match="1-D"):
        WaveNet((3, 8, 8), layers=2)


def test_transition_and_dense_channel_arithmetic():
    spec = {"input": [16, 8, 8], "nodes": {"d": {"block": "dense", "layers": 3, "growth": 4},
                                           "t": {"block": "transition", "theta": 0.5}}}
    model = build_model(spec)
    assert model(torch.randn(1, 16, 8, 8)).shape == (1, (16 + 12) // 2, 4, 4)
    with pytest.raises(ArchError, match="theta"):
        build_model({"input": [16, 8, 8], "nodes": {"t": {"block": "transition", "theta": 1.5}}})


def test_inception_concatenates_its_four_branches():
    spec = {"input": [16, 8, 8], "nodes": {"i": {"block": "inception", "b1": 4, "b2": [4, 8], "b3": [2, 3],
                                                 "b4": 5}}}
    model = build_model(spec).eval()
    x = torch.randn(1, 16, 8, 8)
    block = model.i
    parts = [block.branch1(x), block.branch2(x), block.branch3(x), block.branch4(x)]
    assert [p.shape[1] for p in parts] == [4, 8, 3, 5]
    assert torch.equal(model(x), torch.cat(parts, 1))


def test_every_activation_is_pytorchs_layer_with_its_default_arguments():
    """`leaky_relu` was LeakyReLU(0.1): a net written after timm's CSPNet had equal parameters and 0.2 off logits."""
    from pipeline.blocks.base import ACTS

    defaults = {"leaky_relu": torch.nn.LeakyReLU(), "elu": torch.nn.ELU(), "prelu": torch.nn.PReLU(),
                "softplus": torch.nn.Softplus(), "relu6": torch.nn.ReLU6()}
    x = torch.linspace(-8, 8, 101)
    for name, reference in defaults.items():
        layer = ACTS[name]()
        assert type(layer) is type(reference), name
        assert torch.equal(layer(x.clone()), reference(x.clone())), name
