"""The README's tutorial: SE and Inception-v3's factorized module written from primitives."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from pipeline import build_model, plan_model

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


@pytest.fixture(scope="module")
def tutorial() -> dict:
    text = README[README.index("<!-- tutorial-se-inception -->"):]
    text = text[text.index("```yaml\n") + 8:]
    return yaml.safe_load(text[:text.index("```")])


def with_nodes(doc: dict, input_shape: list[int], nodes: dict) -> dict:
    return {**doc, "input": input_shape, "nodes": nodes}


def copy_in_order(dst: torch.nn.Module, src: torch.nn.Module) -> None:
    ours, theirs = dst.state_dict(), src.state_dict()
    assert [tuple(v.shape) for v in ours.values()] == [tuple(v.shape) for v in theirs.values()]
    dst.load_state_dict(dict(zip(ours, theirs.values())))


def test_tutorial_net_builds_and_runs(tutorial):
    plan = plan_model(tutorial)
    model = build_model(tutorial)
    y = model.eval()(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, 10) == (2, *plan.out_shape)
    assert [n.name for n in plan.nodes] == ["stem", "mix", "se", "gap", "fc"]
    assert plan.nodes[1].out_shape == (4 * 32, 16, 16)


def test_composite_se_is_the_built_in_se(tutorial):
    composite = build_model(with_nodes(tutorial, [40, 6, 6], {"x": {"block": "squeeze_excite"}})).eval()
    built_in = build_model(with_nodes(tutorial, [40, 6, 6], {"x": {"block": "se", "ratio": 0.25}})).eval()
    count = sum(p.numel() for p in built_in.parameters())
    assert sum(p.numel() for p in composite.parameters()) == count == 40 * 10 + 10 + 10 * 40 + 40
    copy_in_order(composite, built_in)
    x = torch.randn(2, 40, 6, 6)
    torch.testing.assert_close(composite(x), built_in(x))


def test_inception_c_is_torchvision_inception_c(tutorial):
    from torchvision.models.inception import InceptionC

    reference = InceptionC(48, channels_7x7=16).eval()
    ours = build_model(with_nodes(tutorial, [48, 17, 17], {"m": {"block": "inception_c", "c7": 16}})).eval()
    copy_in_order(ours, reference)
    x = torch.randn(2, 48, 17, 17)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)
