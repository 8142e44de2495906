"""The zoo's classic nets are torchvision's: equal parameter counts, and converted weights give equal logits."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from pipeline import build_model, plan_model
from pipeline.convert import ConversionError, convert_state_dict, load_converted

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


def reference(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "googlenet":  # with both auxiliary heads, randomly initialised
        return torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    return torchvision.models.get_model(name, weights=None)


@pytest.mark.parametrize("zoo", sorted(REFERENCES))
def test_parameter_count_equals_torchvision(zoo):
    ref = reference(REFERENCES[zoo])
    expected = sum(p.numel() for p in ref.parameters())
    assert plan_model(ARCH / f"{zoo}.yaml").params == expected
    if zoo in DESIGN_COUNTS:
        assert expected == DESIGN_COUNTS[zoo]


def test_googlenet_without_aux_heads_counts_6_624_904():
    plan = plan_model(ARCH / "googlenet.yaml")
    aux = sum(n.params for n in plan.nodes if n.aux is not None)
    assert (plan.params, plan.params - aux) == (13_004_888, 6_624_904)


@pytest.mark.slow
@pytest.mark.parametrize("zoo", sorted(REFERENCES))
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
    proc = subprocess.run([sys.executable, "-m", "pipeline", "import-weights", "torchvision:resnet18",
                           str(ARCH / "resnet18.yaml"), "-o", str(out), "--from-file", str(src)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    model = build_model(ARCH / "resnet18.yaml")
    model.load_state_dict(torch.load(out, weights_only=True))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), ref.eval()(x), atol=1e-5, rtol=1e-4)


def test_wrong_reference_is_a_clear_error():
    model = build_model(ARCH / "resnet18.yaml")
    with pytest.raises(ConversionError, match="not the same network"):
        convert_state_dict(reference("resnet34").state_dict(), model)


def test_import_weights_offline_without_file_says_what_to_do(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipeline", "import-weights", "torchvision:resnet18",
                           str(ARCH / "resnet18.yaml"), "-o", str(tmp_path / "o.pt")],
                          capture_output=True, text=True, cwd=ROOT,
                          env={"PATH": "", "HOME": str(tmp_path), "TORCH_HOME": str(tmp_path)})
    # offline here: a one-line error pointing at --from-file (online, the download would succeed)
    if proc.returncode == 0:
        assert (tmp_path / "o.pt").exists()
    else:
        assert proc.returncode == 2 and "--from-file" in proc.stderr and "Traceback" not in proc.stderr
