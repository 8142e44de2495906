"""The articles' definitions: layer norm per sample (Ba et al.) and per position (ConvNeXt), Wide ResNet's
dropout between the second ReLU and conv (Zagoruyko & Komodakis), GoogLeNet's dropout rates as variables."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pipeline import ArchError, build_model
from pipeline.blocks import BLOCKS

ROOT = Path(__file__).resolve().parents[1]


def _norm(kind: str, shape: tuple[int, ...], **args) -> nn.Module:
    block = BLOCKS["norm"](shape, kind=kind, **args)
    with torch.no_grad():  # a non-trivial affine, so that a wrong axis of scale or shift shows
        for p in block.parameters():
            p.copy_(torch.randn_like(p))
    return block


@pytest.mark.parametrize("shape", [(6, 5, 7), (4, 11), (3, 2, 4, 5)])
def test_layer_is_per_sample_over_all_values(shape):
    block = _norm("layer", shape, eps=1e-5)
    x = torch.randn(3, *shape) * 4 + 2
    weight, bias = block.norm.weight, block.norm.bias
    view = (1, -1) + (1,) * (len(shape) - 1)
    # the definition written out: mean and (biased) variance over everything a sample holds
    dims = tuple(range(1, x.ndim))
    mean, var = x.mean(dims, keepdim=True), x.var(dims, unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * weight.view(view) + bias.view(view)
    torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)
    # the functional form, and GroupNorm with one group, agree
    normed = F.layer_norm(x, x.shape[1:], eps=1e-5)
    torch.testing.assert_close(block(x), normed * weight.view(view) + bias.view(view), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(block(x), F.group_norm(x, 1, weight, bias, 1e-5), rtol=1e-5, atol=1e-5)
    assert weight.shape == bias.shape == (shape[0],)  # per-channel affine: C parameters each


def test_layer2d_is_over_channels_at_each_position():
    from timm.layers import LayerNorm2d

    block = _norm("layer2d", (6, 5, 7), eps=1e-6)
    x = torch.randn(2, 6, 5, 7) * 3 - 1
    mean, var = x.mean(1, keepdim=True), x.var(1, unbiased=False, keepdim=True)
    weight, bias = block.norm.weight, block.norm.bias
    expected = (x - mean) / torch.sqrt(var + 1e-6) * weight.view(1, -1, 1, 1) + bias.view(1, -1, 1, 1)
    torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)
    reference = LayerNorm2d(6, eps=1e-6)
    reference.load_state_dict(block.norm.state_dict())
    torch.testing.assert_close(block(x), reference(x), rtol=1e-5, atol=1e-5)


def test_layer_and_layer2d_differ_on_maps_and_agree_on_flat_inputs():
    x = torch.randn(4, 6, 3, 3)
    assert not torch.allclose(BLOCKS["norm"]((6, 3, 3), kind="layer")(x), BLOCKS["norm"]((6, 3, 3), kind="layer2d")(x))
    flat = torch.randn(4, 10)
    for kind in ("layer", "layer2d"):
        torch.testing.assert_close(BLOCKS["norm"]((10,), kind=kind)(flat), F.layer_norm(flat, (10,)))


def test_batch_and_instance_unchanged():
    x = torch.randn(4, 6, 5, 5)
    batch = BLOCKS["norm"]((6, 5, 5), kind="batch").train()
    torch.testing.assert_close(batch(x), F.batch_norm(x, None, None, training=True))
    instance = BLOCKS["norm"]((6, 5, 5), kind="instance")
    torch.testing.assert_close(instance(x), F.instance_norm(x))


def test_conv_node_takes_layer_norms(tmp_path):
    text = ("name: t\ninput: [3, 8, 8]\nnodes:\n  a: {block: conv, out: 4, norm: layer}\n"
            "  b: {block: conv, out: 4, norm: layer2d}\n  c: {block: conv, out: 4, norm: lyer}\n")
    path = tmp_path / "t.yaml"
    path.write_text(text.replace("  c: {block: conv, out: 4, norm: lyer}\n", ""))
    model = build_model(path)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 4, 8, 8)
    path.write_text(text)
    with pytest.raises(ArchError, match=r"t.yaml:6:.*'c'.*lyer"):
        build_model(path)


def test_wide_block_drops_between_second_relu_and_conv():
    block = BLOCKS["wide"]((8, 6, 6), out=8, dropout=0.3)
    order: list[str] = []
    for name in ("norm", "conv1"):
        getattr(block, name).register_forward_hook(lambda *_, name=name: order.append(name))
    for name in ("norm", "act", "drop", "conv"):
        getattr(block.conv2, name).register_forward_hook(lambda *_, name=name: order.append(f"conv2.{name}"))
    block.train()(torch.randn(2, 8, 6, 6))
    assert order == ["norm", "conv1", "conv2.norm", "conv2.act", "conv2.drop", "conv2.conv"]
    assert isinstance(block.conv2.drop, nn.Dropout) and block.conv2.drop.p == 0.3
    assert not any(isinstance(m, nn.Dropout) for n, m in block.named_modules() if n != "conv2.drop")


def test_wide_block_second_norm_sees_undropped_activations():
    # BN-ReLU-dropout-conv: the second batch norm's input does not depend on the dropout mask
    torch.manual_seed(0)
    block = BLOCKS["wide"]((8, 6, 6), out=8, dropout=0.5).train()
    seen = []
    block.conv2.norm.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0].clone()))
    x = torch.randn(4, 8, 6, 6)
    first, second = block(x), block(x)
    torch.testing.assert_close(seen[0], seen[1])
    assert not torch.allclose(first, second)  # the dropout is active


def test_wide_resnet_parameter_counts_unchanged():
    counts = {name: sum(p.numel() for p in build_model(ROOT / "architectures" / name).parameters())
              for name in ("wrn16_8_cifar.yaml", "wrn28_10_cifar.yaml")}
    assert counts == {"wrn16_8_cifar.yaml": 10_961_370, "wrn28_10_cifar.yaml": 36_479_194}


@pytest.mark.parametrize("name, dropout, aux_dropout", [("googlenet.yaml", 0.2, 0.7), ("googlenet_lrn.yaml", 0.4, 0.7)])
def test_googlenet_dropout_rates_are_variables(name, dropout, aux_dropout):
    def rates(model):
        return {n: m.p for n, m in model.named_modules() if isinstance(m, nn.Dropout)}

    path = ROOT / "architectures" / name
    assert rates(build_model(path, classes=10)) == {"drop.drop": dropout, "aux1.drop.drop": aux_dropout,
                                                    "aux2.drop.drop": aux_dropout}
    assert rates(build_model(path, classes=10, dropout=0.5, aux_dropout=0.1)) == {
        "drop.drop": 0.5, "aux1.drop.drop": 0.1, "aux2.drop.drop": 0.1}
