"""The `timm` block: embeds timm models, loads local weights, rejects unknown names."""
from __future__ import annotations

import timm
import torch
import pytest

from pipeline import ArchError, build_model, plan_model


def spec(**args):
    return {"input": [3, 32, 32], "vars": {"classes": 4},
            "nodes": {"backbone": {"block": "timm", **args}, "fc": {"block": "linear", "out": "classes"}}}


def test_local_pretrained_weights_reach_the_backbone(tmp_path):
    torch.manual_seed(1)
    reference = timm.create_model("resnet18", pretrained=False, num_classes=1000).eval()
    path = tmp_path / "resnet18_timm.pth"
    torch.save(reference.state_dict(), path)
    model = build_model(spec(model="resnet18", weights=str(path))).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.backbone(x), reference.forward_head(reference.forward_features(x),
                                                                         pre_logits=True), atol=1e-5)


def test_unknown_timm_model_suggests_names():
    with pytest.raises(ArchError, match="unknown timm model 'resnet181'.*did you mean"):
        plan_model(spec(model="resnet181"))


def test_weights_of_another_model_are_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(timm.create_model("resnet10t", pretrained=False).state_dict(), path)
    with pytest.raises(ArchError, match="do not fit"):
        build_model(spec(model="resnet18", weights=str(path)))
