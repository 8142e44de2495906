"""torch.compile(fullgraph=True) traces zoo nets without graph breaks, in train and eval mode."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline import build_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("name, shape, depth", [
    # one net per kind of wiring: branches, concatenation and auxiliary heads (SqueezeNet's fire
    # modules are the same ops); dense; 1-D dilated causal; residual (basic with option-A shortcuts,
    # pre-activation). tests/test_zoo_reach.py traces the modern ones (squeeze-excitation, channel split
    # and shuffle, groups). Deep nets at a smaller depth of the same file: the blocks traced are the
    # same, repeated less. benchmarks/bench_compile.py --check traces every zoo file as it is.
    ("googlenet", (3, 64, 64), None), ("densenet_bc100_cifar", (3, 32, 32), 40),
    ("wavenet_classifier", (1, 256), None), ("resnet20_cifar", (3, 32, 32), None),
    ("preact_resnet110_cifar", (3, 32, 32), 20),
])
def test_compiles_without_graph_breaks(name, shape, depth):
    torch._dynamo.reset()
    model = build_model(ROOT / "architectures" / f"{name}.yaml", input_shape=shape,
                        **({"depth": depth} if depth else {}))
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
