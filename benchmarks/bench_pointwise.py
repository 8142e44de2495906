"""1x1 convs on channels-last CPU tensors: oneDNN's convolution or a matmul over the channels?

torchvision writes ConvNeXt's MLP as Linear layers on NHWC tensors; our zoo file writes 1x1 convs.
Would running a 1x1 conv on a channels-last CPU input as a matrix product over the channels (the
`MatmulPointwise` below) make our nets faster? This times whole training steps (forward + backward
+ SGD) of the same net with every 1x1 stride-1 ungrouped conv as `MatmulPointwise` and as the plain
`nn.Conv2d` the blocks build, A/B alternating rounds: ConvNeXt-T as `bench_models.py` runs it (NCHW
input; its channel layer norms leave channels-last tensors), and nets trained with `channels_last`
(the default config's layout), where every tensor is channels-last. (It did not: docs/BENCHMARKS.md.)

    python benchmarks/bench_pointwise.py --rounds 5
"""
from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_models import ab, train_step_fn  # noqa: E402
from pipeline import build_model  # noqa: E402
from pipeline.blocks.base import channels_to_front, channels_to_last  # noqa: E402

CASES = [("convnext_tiny", False), ("convnext_tiny", True), ("resnet50", True), ("mobilenet_v2", True)]


class MatmulPointwise(nn.Conv2d):
    """A 1x1 conv that runs as a matmul over the channels when its input is channels-last."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            return channels_to_front(nn.functional.linear(channels_to_last(x), self.weight.flatten(1), self.bias))
        return super().forward(x)


def with_matmul(model: nn.Module) -> nn.Module:
    """A copy whose pointwise convs are MatmulPointwise (same weights)."""
    model = copy.deepcopy(model)
    for module in model.modules():
        if (type(module) is nn.Conv2d and module.kernel_size == (1, 1) and module.stride == (1, 1)
                and module.groups == 1 and module.padding == (0, 0)):
            module.__class__ = MatmulPointwise
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"# {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d')}, {args.size}x{args.size}, batch {args.batch}, training steps")
    print("| net | layout | matmul path img/s | conv img/s | ratio |\n|---|---|---:|---:|---:|")
    for name, channels_last in CASES:
        torch.manual_seed(0)
        model = build_model(ROOT / "architectures" / f"{name}.yaml", input_shape=(3, args.size, args.size)).train()
        x, y = torch.randn(args.batch, 3, args.size, args.size), torch.randint(0, 1000, (args.batch,))
        model, other = with_matmul(model), model
        if channels_last:
            model, other = (m.to(memory_format=torch.channels_last) for m in (model, other))
            x = x.contiguous(memory_format=torch.channels_last)
        a, b = ab(train_step_fn(model, x, y), train_step_fn(other, x, y), args.iters, args.rounds, args.batch)
        print(f"| {name} | {'channels_last' if channels_last else 'NCHW'} | {a:.1f} | {b:.1f} | {a / b:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
