"""torch.compile(fullgraph=True) traces zoo nets without graph breaks, in train and eval mode."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline import build_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("name, shape", [
    ("lenet5", (1, 32, 32)), ("googlenet", (3, 64, 64)), ("resnet20_cifar", (3, 32, 32)),
    ("densenet_bc100_cifar", (3, 32, 32)), ("mobilenet_v2", (3, 64, 64)), ("tutorial_squeezenet_cifar", (3, 32, 32)),
    ("wavenet_classifier", (1, 256)), ("preact_resnet110_cifar", (3, 32, 32)),
])
def test_compiles_without_graph_breaks(name, shape):
    torch._dynamo.reset()
    model = build_model(ROOT / "architectures" / f"{name}.yaml", input_shape=shape)
    # the "eager" backend runs dynamo's tracing (where graph breaks happen) without code generation
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    x = torch.randn(2, *shape)
    for mode in (True, False):
        model.train(mode)
        torch.manual_seed(0)
        out = compiled(x)
        torch.manual_seed(0)
        ref = model(x)
        got = out.logits if hasattr(out, "logits") else out
        want = ref.logits if hasattr(ref, "logits") else ref
        assert torch.allclose(got, want, atol=1e-5), f"compiled differs in {'train' if mode else 'eval'} mode"
