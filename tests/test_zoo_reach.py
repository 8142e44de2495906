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
from pipeline.convert import ConversionError, convert_state_dict

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "architectures"

# zoo file -> (reference "library:name", parameter count quoted in issue 12, or None where it quotes none)
ZOO = {
    "squeezenet1_0": ("torchvision:squeezenet1_0", 1_248_424),
    "squeezenet1_1": ("torchvision:squeezenet1_1", 1_235_496),
    "resnext50_32x4d": ("torchvision:resnext50_32x4d", 25_028_904),
    "mnasnet1_0": ("torchvision:mnasnet1_0", 4_383_312),
    "regnet_x_400mf": ("torchvision:regnet_x_400mf", 5_495_976),
}
# logits are compared at a small input where the net allows it; big nets are marked slow
LOGIT_SIZE = {"default": 96}
SLOW = {"resnext50_32x4d", "mnasnet1_0", "regnet_x_400mf"}


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
    return model.eval()


@pytest.mark.parametrize("zoo", sorted(ZOO))
def test_parameter_count_equals_the_reference(zoo):
    spec, quoted = ZOO[zoo]
    expected = reference_params(spec)
    assert plan_model(ARCH / f"{zoo}.yaml").params == expected
    if quoted is not None:
        assert expected == quoted


def _logit_params():
    return [pytest.param(z, marks=pytest.mark.slow) if z in SLOW else z for z in sorted(ZOO)]


@pytest.mark.parametrize("zoo", _logit_params())
def test_import_weights_gives_the_reference_logits(zoo, tmp_path, capsys):
    spec, _ = ZOO[zoo]
    ref = reference(spec)
    src, out = tmp_path / "reference.pth", tmp_path / "converted.pt"
    torch.save(ref.state_dict(), src)
    rc = main(["import-weights", spec, str(ARCH / f"{zoo}.yaml"), "-o", str(out), "--from-file", str(src)])
    assert rc == 0, capsys.readouterr().err
    model = build_model(ARCH / f"{zoo}.yaml")
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


def test_import_weights_names_the_sources_it_knows(tmp_path, capsys):
    rc = main(["import-weights", "keras:resnet50", str(ARCH / "resnet18.yaml"), "-o", str(tmp_path / "o.pt")])
    assert rc == 2 and "torchvision:NAME or timm:NAME" in capsys.readouterr().err
    rc = main(["import-weights", "timm:no_such_net", str(ARCH / "resnet18.yaml"), "-o", str(tmp_path / "o.pt")])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown timm model 'no_such_net'" in err and "Traceback" not in err


# a representative subset: grouped convs, composite blocks, computed depths
TRACED = {"squeezenet1_1": 64, "regnet_x_400mf": 64}


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
