"""The zoo's classic nets are torchvision's: equal parameter counts, and converted weights give equal logits."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from pipeline import build_model, plan_model
from pipeline.convert import ConversionError, convert_state_dict, load_converted

from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "architectures"

# zoo file -> torchvision builder name; counts from ../shared/DESIGN.md where it lists them
REFERENCES = {
    "alexnet": "alexnet", "vgg11": "vgg11", "vgg11_bn": "vgg11_bn", "vgg13": "vgg13", "vgg13_bn": "vgg13_bn",
    "vgg16": "vgg16", "vgg16_bn": "vgg16_bn", "vgg19": "vgg19", "vgg19_bn": "vgg19_bn",
    "googlenet": "googlenet", "resnet18": "resnet18", "resnet34": "resnet34", "resnet50": "resnet50",
    "resnet101": "resnet101", "resnet152": "resnet152", "wide_resnet50_2": "wide_resnet50_2",
    "densenet121": "densenet121", "densenet169": "densenet169", "densenet201": "densenet201",
    "mobilenet_v2": "mobilenet_v2",
}
DESIGN_COUNTS = {"alexnet": 61_100_840, "vgg16": 138_357_544, "resnet18": 11_689_512, "resnet34": 21_797_672,
                 "resnet50": 25_557_032, "resnet101": 44_549_160, "resnet152": 60_192_808,
                 "densenet121": 7_978_856, "mobilenet_v2": 3_504_872, "wide_resnet50_2": 68_883_240}


# the logit check builds real weights for one net per family (the rest share its blocks and conversion,
# and their parameter counts are checked against torchvision's one by one)
FAMILIES = ["alexnet", "vgg11_bn", "googlenet", "resnet18", "resnet50", "densenet121", "mobilenet_v2"]


def reference(name: str, device: str = "cpu") -> torch.nn.Module:
    torch.manual_seed(0)
    with torch.device(device):  # "meta": the shapes only, nothing allocated or initialised (for counts)
        if name == "googlenet":  # with both auxiliary heads, randomly initialised
            return torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
        return torchvision.models.get_model(name, weights=None)


@pytest.mark.parametrize("zoo", sorted(REFERENCES))
def test_parameter_count_equals_torchvision(zoo):
    ref = reference(REFERENCES[zoo], "meta")
    expected = sum(p.numel() for p in ref.parameters())
    assert plan_model(ARCH / f"{zoo}.yaml").params == expected
    if zoo in DESIGN_COUNTS:
        assert expected == DESIGN_COUNTS[zoo]


def test_googlenet_without_aux_heads_counts_6_624_904():
    plan = plan_model(ARCH / "googlenet.yaml")
    aux = sum(n.params for n in plan.nodes if n.aux is not None)
    assert (plan.params, plan.params - aux) == (13_004_888, 6_624_904)


@pytest.mark.slow
@pytest.mark.parametrize("zoo", FAMILIES)
def test_converted_weights_give_the_same_logits(zoo):
    ref = reference(REFERENCES[zoo]).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so the check covers buffers too
        for module in ref.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    model = build_model(ARCH / f"{zoo}.yaml")
    load_converted(model, convert_state_dict(ref.state_dict(), model, REFERENCES[zoo]))
    model.eval()
    size = 224 if zoo.startswith(("alexnet", "vgg")) else 96  # smaller input where the net allows it
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected, actual = ref(x), model(x)
    scale = expected.abs().max().clamp_min(1e-6)
    assert ((actual - expected).abs().max() / scale).item() <= 1e-4


def test_import_weights_cli_writes_a_loadable_state_dict(tmp_path):
    ref = reference("resnet18")
    src = tmp_path / "resnet18.pth"
    torch.save(ref.state_dict(), src)
    out = tmp_path / "out.pt"
    proc = run_cli("import-weights", "torchvision:resnet18", str(ARCH / "resnet18.yaml"), "-o", str(out),
                   "--from-file", str(src))
    assert proc.returncode == 0, proc.stderr
    model = build_model(ARCH / "resnet18.yaml")
    model.load_state_dict(torch.load(out, weights_only=True))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), ref.eval()(x), atol=1e-5, rtol=1e-4)


def test_wrong_reference_is_a_clear_error():
    model = build_model(ARCH / "resnet18.yaml")
    with pytest.raises(ConversionError, match="not the same network"):
        convert_state_dict(reference("resnet34", "meta").state_dict(), model)


def test_import_weights_offline_without_file_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached download to fall back on
    proc = run_cli("import-weights", "torchvision:resnet18", str(ARCH / "resnet18.yaml"), "-o", str(tmp_path / "o.pt"))
    # offline here: a one-line error pointing at --from-file (online, the download would succeed)
    if proc.returncode == 0:
        assert (tmp_path / "o.pt").exists()
    else:
        assert proc.returncode == 2 and "--from-file" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("zoo, paper, overrides", [
    ("resnet20_cifar", 0.27e6, {}), ("resnet56_cifar", 0.85e6, {}), ("resnet110_cifar", 1.7e6, {}),
    ("wrn28_10_cifar", 36.5e6, {}), ("densenet_bc100_cifar", 0.8e6, {"classes": 100}),
    ("preact_resnet_cifar", 1.7e6, {}), ("wrn16_8_cifar", 11.0e6, {}),
])
def test_cifar_nets_match_the_papers_within_2_percent(zoo, paper, overrides):
    params = plan_model(ARCH / f"{zoo}.yaml", **overrides).params
    assert abs(params - paper) / paper <= 0.02, params


@pytest.mark.parametrize("depth", [20, 56])
def test_plain_nets_are_the_resnets_without_shortcuts(depth):
    plain, res = plan_model(ARCH / f"plain{depth}_cifar.yaml"), plan_model(ARCH / f"resnet{depth}_cifar.yaml")
    # option-A shortcuts have no weights: same layers, same parameters, same shapes...
    assert plain.params == res.params and plain.out_shape == res.out_shape
    # ...built from plain convs (2 per residual block) instead of residual blocks
    stages = lambda p, block: [len(n.reps) for n in p.nodes if n.block == block]  # noqa: E731
    assert stages(plain, "conv")[1:] == [2 * r for r in stages(res, "basic")] == [2 * (depth - 2) // 6] * 3


def test_readme_zoo_table_is_generated_from_the_files():
    from pipeline.summary import zoo_table

    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- zoo:start -->\n", 1)[1].split("<!-- zoo:end -->", 1)[0]
    assert table == zoo_table(ARCH), "README zoo table is stale: regenerate with `python -m pipeline zoo`"
