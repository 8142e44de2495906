"""The modern zoo files (issue 12) are torchvision's and timm's nets: equal parameter counts, and
their weights, converted by `import-weights`, give equal logits; a representative subset traces
with torch.compile(fullgraph=True) and exports to ONNX (benchmarks/bench_compile.py checks all)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import build_model, plan_model
from pipeline.cli import main
from pipeline.convert import ConversionError, convert_state_dict, load_converted

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "architectures"

# zoo file -> (reference "library:name", parameter count quoted in issue 12, or None where it quotes none)
ZOO = {
    "squeezenet1_0": ("torchvision:squeezenet1_0", 1_248_424),
    "squeezenet1_1": ("torchvision:squeezenet1_1", 1_235_496),
    "resnext50_32x4d": ("torchvision:resnext50_32x4d", 25_028_904),
    "mnasnet1_0": ("torchvision:mnasnet1_0", 4_383_312),
    "regnet_x_400mf": ("torchvision:regnet_x_400mf", 5_495_976),
    "regnet_y_400mf": ("torchvision:regnet_y_400mf", 4_344_144),
    "shufflenet_v2_x1_0": ("torchvision:shufflenet_v2_x1_0", 2_278_604),
    "inception_v3": ("torchvision:inception_v3", 27_161_264),
    "mobilenet_v3_large": ("torchvision:mobilenet_v3_large", 5_483_032),
    "mobilenet_v3_small": ("torchvision:mobilenet_v3_small", 2_542_856),
    "efficientnet_b0": ("torchvision:efficientnet_b0", 5_288_548),
    "efficientnet_b1": ("torchvision:efficientnet_b1", None),
    "efficientnet_b2": ("torchvision:efficientnet_b2", None),
    "efficientnet_b3": ("torchvision:efficientnet_b3", 12_233_232),
    "efficientnet_b4": ("torchvision:efficientnet_b4", None),
    "efficientnet_b5": ("torchvision:efficientnet_b5", None),
    "efficientnet_b6": ("torchvision:efficientnet_b6", None),
    "efficientnet_b7": ("torchvision:efficientnet_b7", None),
    "efficientnet_v2_s": ("torchvision:efficientnet_v2_s", 21_458_488),
    "convnext_tiny": ("torchvision:convnext_tiny", 28_589_128),
    "seresnet50": ("timm:seresnet50", 28_088_024),
    "repvgg_a0": ("timm:repvgg_a0", None),  # one composite block, its identity branch kept by `if:`
}
# logits are compared at a small input where the net allows it (Inception-v3's aux head needs 299)
LOGIT_SIZE = {"default": 96, "inception_v3": 299}
SCALED = {f"efficientnet_b{k}" for k in range(1, 8)}  # efficientnet_b0.yaml with other compound-scaling variables
FAST = {"squeezenet1_0", "squeezenet1_1", "mobilenet_v3_small", "shufflenet_v2_x1_0", "repvgg_a0"}  # the others are slow


def _construct(spec: str) -> torch.nn.Module:
    library, name = spec.split(":")
    if library == "timm":
        import timm

        return timm.create_model(name, pretrained=False)
    import torchvision

    return torchvision.models.get_model(name, weights=None)


def reference_params(spec: str) -> int:
    """The reference's parameter count, built without weights where its constructor allows."""
    try:
        with torch.device("meta"):
            model = _construct(spec)
    except (NotImplementedError, RuntimeError):  # RegNet computes its widths with real tensors
        model = _construct(spec)
    return sum(p.numel() for p in model.parameters())


def reference(spec: str) -> torch.nn.Module:
    """The reference net, randomly initialised, with non-trivial batch-norm statistics."""
    torch.manual_seed(0)
    model = _construct(spec)
    with torch.no_grad():  # so the check covers buffers too
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        for name, param in model.named_parameters():  # ConvNeXt's 1e-6 would hide its blocks' branches
            if name.endswith("layer_scale"):
                param.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("zoo", sorted(ZOO))
def test_parameter_count_equals_the_reference(zoo):
    spec, quoted = ZOO[zoo]
    expected = reference_params(spec)
    assert plan_model(ARCH / f"{zoo}.yaml").params == expected
    if quoted is not None:
        assert expected == quoted


def _logit_params():
    return [z if z in FAST else pytest.param(z, marks=pytest.mark.slow) for z in sorted(ZOO)]


@pytest.mark.parametrize("zoo", _logit_params())
def test_import_weights_gives_the_reference_logits(zoo, tmp_path, capsys):
    spec, _ = ZOO[zoo]
    ref = reference(spec)
    model = build_model(ARCH / f"{zoo}.yaml")
    if zoo in SCALED:  # the conversion the command runs, without its file round trip (checked on the others)
        load_converted(model, convert_state_dict(ref.state_dict(), model, spec.split(":")[1]))
    else:
        src, out = tmp_path / "reference.pth", tmp_path / "converted.pt"
        torch.save(ref.state_dict(), src)
        rc = main(["import-weights", spec, str(ARCH / f"{zoo}.yaml"), "-o", str(out), "--from-file", str(src)])
        assert rc == 0, capsys.readouterr().err
        model.load_state_dict(torch.load(out, weights_only=True))
    size = LOGIT_SIZE.get(zoo, LOGIT_SIZE["default"])
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected, actual = ref(x), model.eval()(x)
    scale = expected.abs().max().clamp_min(1e-6)
    assert ((actual - expected).abs().max() / scale).item() <= 1e-4


def test_regnet_design_space_variables_give_torchvisions_stages():
    from torchvision.models.regnet import BlockParams

    # regnet_x_400mf's own point and torchvision's other RegNetX sizes (800MF .. 32GF), through the same file
    for depth, w0, wa, wm, gw in [(22, 24, 24.48, 2.54, 16), (16, 56, 35.73, 2.28, 16), (18, 80, 34.01, 2.25, 24),
                                  (25, 88, 26.31, 2.25, 48), (23, 80, 49.56, 2.88, 120), (22, 216, 55.59, 2.1, 128),
                                  (23, 320, 69.86, 2.0, 168)]:
        plan = plan_model(ARCH / "regnet_x_400mf.yaml", depth=depth, w0=w0, wa=wa, wm=wm, group_width=gw)
        ref = BlockParams.from_init_params(depth=depth, w_0=w0, w_a=wa, w_m=wm, group_width=gw)
        assert (plan.vars["depths"], plan.vars["widths"]) == (ref.depths, ref.widths), (depth, w0)


def test_regnet_converts_with_its_shortcut_registered_first():
    # torchvision registers `proj` before the branch `f`; without the layout table shapes would not pair
    model = build_model(ARCH / "regnet_x_400mf.yaml")
    state = reference("torchvision:regnet_x_400mf").state_dict()
    keys = list(state)
    assert keys.index(next(k for k in keys if ".proj." in k)) < keys.index(next(k for k in keys if ".f." in k))
    converted = convert_state_dict(state, model, "regnet_x_400mf")
    assert set(converted) == set(model.state_dict())
    with pytest.raises(ConversionError, match="has shape"):
        convert_state_dict(state, model, "")


def _drop_rates(model: torch.nn.Module) -> list[float]:
    return [round(float(m.p if hasattr(m, "p") else m.drop_path), 6) for m in model.modules()
            if type(m).__name__ in ("DropPath", "StochasticDepth") or isinstance(getattr(m, "drop_path", None), float)]


@pytest.mark.parametrize("zoo", ["efficientnet_b0", "convnext_tiny"])
def test_stochastic_depth_rises_like_the_references(zoo):
    ours = _drop_rates(build_model(ARCH / f"{zoo}.yaml"))
    with torch.device("meta"):
        expected = _drop_rates(_construct(ZOO[zoo][0]))
    assert ours == expected and max(ours) > 0


@pytest.mark.slow
def test_inception_v3_aux_head_is_torchvisions_weighted_0_3(tmp_path):
    ref = reference("torchvision:inception_v3")
    model = build_model(ARCH / "inception_v3.yaml")
    model.load_state_dict(convert_state_dict(ref.state_dict(), model, "inception_v3"))
    x = torch.randn(2, 3, 299, 299)
    ref.train(), model.train()  # batch statistics in both; the aux head has no dropout
    with torch.no_grad():
        expected, out = ref(x).aux_logits, model(x)
    (name, aux), = out.aux.items()
    assert name == "AuxLogits" and aux.weight == 0.3
    assert ((aux.logits - expected).abs().max() / expected.abs().max()).item() <= 1e-4


def test_import_weights_names_the_sources_it_knows(tmp_path, capsys):
    rc = main(["import-weights", "keras:resnet50", str(ARCH / "resnet18.yaml"), "-o", str(tmp_path / "o.pt")])
    assert rc == 2 and "torchvision:NAME or timm:NAME" in capsys.readouterr().err
    rc = main(["import-weights", "timm:no_such_net", str(ARCH / "resnet18.yaml"), "-o", str(tmp_path / "o.pt")])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown timm model 'no_such_net'" in err and "Traceback" not in err


# a representative subset: SE in built-in and composite blocks, hard-swish, channel split and shuffle,
# optional nodes (repeat 0), computed depths
TRACED = {"mobilenet_v3_small": 64, "shufflenet_v2_x1_0": 64, "regnet_y_400mf": 64}


@pytest.mark.slow
@pytest.mark.parametrize("zoo", sorted(TRACED))
def test_compiles_in_one_graph_and_exports_to_onnx(zoo, tmp_path):
    import onnxruntime

    from pipeline.export import export

    size = TRACED[zoo]
    torch._dynamo.reset()
    model = build_model(ARCH / f"{zoo}.yaml", input_shape=(3, size, size)).eval()
    x = torch.randn(2, 3, size, size)
    compiled = torch.compile(model, fullgraph=True, backend="eager")  # dynamo's tracing, no code generation
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(compiled(x), expected, atol=1e-5)
    path = export(model, "onnx", tmp_path / f"{zoo}.onnx")
    actual = onnxruntime.InferenceSession(str(path)).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(actual, expected.numpy(), rtol=1e-4, atol=1e-4 * expected.abs().max().item())


@pytest.mark.slow
def test_readme_timm_import_command(tmp_path, monkeypatch, capsys):
    import shlex

    torch.save(reference("timm:seresnet50").state_dict(), tmp_path / "seresnet50.pth")
    (tmp_path / "architectures").symlink_to(ARCH)
    monkeypatch.chdir(tmp_path)
    command = "python -m pipeline import-weights timm:seresnet50 architectures/seresnet50.yaml -o seresnet50.pt --from-file seresnet50.pth"
    assert main(shlex.split(command)[3:]) == 0, capsys.readouterr().err
    assert "from timm 'seresnet50'" in capsys.readouterr().out
    model = build_model(ARCH / "seresnet50.yaml")
    model.load_state_dict(torch.load(tmp_path / "seresnet50.pt", weights_only=True))


def test_repeat_zero_leaves_a_node_out():
    # the zoo's optional shortcut projection: present only where the shape changes
    arch = {"input": [8, 8, 8], "blocks": {"unit": {"params": {"out": None, "stride": 1}, "nodes": {
        "body": {"block": "conv", "out": "out", "stride": "stride"},
        "proj": {"block": "conv", "out": "out", "kernel": 1, "stride": "stride", "act": "none", "from": "input",
                 "repeat": "1 if stride > 1 else 0 if in_channels == out else 1"},
        "add": {"block": "add", "from": ["body", "proj"]}}}},
        "nodes": {"keep": {"block": "unit", "out": 8}, "down": {"block": "unit", "out": 16, "stride": 2}}}
    plan = plan_model(arch)
    assert [n.params for n in plan.nodes] == [8 * 8 * 9 + 16, 16 * 8 * 9 + 32 + 16 * 8 + 32]
    model = build_model(arch).eval()
    x = torch.randn(1, 8, 8, 8)
    with torch.no_grad():
        keep = model.keep
        assert torch.equal(keep.proj(x), x)  # the left-out node passes its input on
        assert model(x).shape == (1, 16, 4, 4)


def test_mnasnet_batch_norms_keep_torchvisions_momentum():
    # a model-wide `norm_momentum:` (TensorFlow's decay 0.9997 in the reference); other files keep PyTorch's 0.1
    import torchvision

    def momenta(model):
        return [m.momentum for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]

    ours, theirs = momenta(build_model(ARCH / "mnasnet1_0.yaml")), momenta(torchvision.models.mnasnet1_0())
    assert len(ours) == len(theirs) == 52 and ours == pytest.approx(theirs, rel=1e-9)
    assert set(momenta(build_model(ARCH / "mobilenet_v2.yaml", input_shape=(3, 32, 32)))) == {0.1}
    assert set(momenta(build_model(ARCH / "mnasnet1_0.yaml", bn_momentum=0.1))) == {0.1}  # the README's short-run form
