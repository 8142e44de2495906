"""Model overhead: YAML-built nets against torchvision's hand-written references, side by side.

For each net: training-step throughput (forward + backward + SGD step) and eval-mode inference
throughput of the YAML model and of the reference, same input, batch and thread count, measured
in alternating A/B rounds; the table reports medians and the ratio ours / reference (1.00 = no
overhead). Options add torch.compile, channels_last and bf16 autocast variants of our models.

    python benchmarks/bench_models.py                       # default set, prints a Markdown table
    python benchmarks/bench_models.py --nets resnet18 --batch 16 --rounds 7
    python benchmarks/bench_models.py --variants compile channels_last bf16
    python benchmarks/bench_models.py --nets efficientnet_b0 mobilenet_v3_large convnext_tiny regnet_y_400mf --size 128
"""
from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torchvision
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import build_model  # noqa: E402


class CifarBasic(nn.Module):
    """Hand-written reference CIFAR ResNet block (option A shortcut), as in common PyTorch code."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, cout - cin

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.pad:
            short = nn.functional.pad(short, (0, 0, 0, 0, 0, self.pad))
        return torch.relu(out + short)


def cifar_resnet(depth: int = 56, classes: int = 10) -> nn.Module:
    n = (depth - 2) // 6
    layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True)], 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(n):
            layers.append(CifarBasic(cin, cout, stride if i == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes)]
    return nn.Sequential(*layers)


NETS = {  # name: (zoo file, reference factory, input size)
    "resnet18": ("resnet18.yaml", lambda: torchvision.models.resnet18(), 224),
    "resnet50": ("resnet50.yaml", lambda: torchvision.models.resnet50(), 224),
    "googlenet": ("googlenet.yaml", lambda: torchvision.models.googlenet(aux_logits=True, init_weights=True), 224),
    "densenet121": ("densenet121.yaml", lambda: torchvision.models.densenet121(), 224),
    "mobilenet_v2": ("mobilenet_v2.yaml", lambda: torchvision.models.mobilenet_v2(), 224),
    "resnet56_cifar": ("resnet56_cifar.yaml", lambda: cifar_resnet(56), 32),
    # issue 12's modern families (python benchmarks/bench_models.py --nets efficientnet_b0 ...)
    "efficientnet_b0": ("efficientnet_b0.yaml", lambda: torchvision.models.efficientnet_b0(), 224),
    "mobilenet_v3_large": ("mobilenet_v3_large.yaml", lambda: torchvision.models.mobilenet_v3_large(), 224),
    "convnext_tiny": ("convnext_tiny.yaml", lambda: torchvision.models.convnext_tiny(), 224),
    "regnet_y_400mf": ("regnet_y_400mf.yaml", lambda: torchvision.models.regnet_y_400mf(), 224),
}
DEFAULT_NETS = ["resnet18", "resnet50", "googlenet", "densenet121", "mobilenet_v2", "resnet56_cifar"]


def logits_of(out):
    if isinstance(out, torch.Tensor):
        return out, 0.0
    if hasattr(out, "aux") and isinstance(out.aux, dict):  # ours: TrainOutput
        return out.logits, sum(a.weight * a.logits.float().mean() for a in out.aux.values())
    return out[0], sum(0.3 * o.float().mean() for o in out[1:] if o is not None)  # torchvision GoogLeNetOutputs


def train_step_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool = False):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, extra = logits_of(model(x))
            loss = loss_fn(logits.float(), y) + extra
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def infer_fn(model: nn.Module, x: torch.Tensor, bf16: bool = False):
    def step():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model(x)

    return step


def timed(step, iters: int) -> float:
    start = time.perf_counter()
    for _ in range(iters):
        step()
    return time.perf_counter() - start


def ab(a, b, iters: int, rounds: int, batch: int) -> tuple[float, float]:
    """Median images/s of a and b over alternating rounds (after one warm-up each)."""
    a(), b()
    ta, tb = [], []
    for r in range(rounds):
        for fn, acc in ((a, ta), (b, tb)) if r % 2 == 0 else ((b, tb), (a, ta)):
            acc.append(batch * iters / timed(fn, iters))
    return statistics.median(ta), statistics.median(tb)


def variant(model: nn.Module, name: str, x: torch.Tensor) -> tuple[nn.Module, torch.Tensor, bool]:
    if name == "channels_last":
        return model.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last), False
    if name == "bf16":
        return model, x, True
    if name == "compile":
        return torch.compile(model, fullgraph=True), x, False
    return model, x, False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", nargs="+", default=DEFAULT_NETS, choices=list(NETS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, help="input side for the ImageNet nets (default: each net's own)")
    parser.add_argument("--cifar-batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", nargs="*", default=[], choices=["compile", "channels_last", "bf16"],
                        help="also time our model with these, against our eager fp32 model")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}, {time.strftime('%Y-%m-%d')}")
    print("| net | input | batch | mode | ours img/s | reference img/s | ratio |")
    print("|---|---|---:|---|---:|---:|---:|")
    for name in args.nets:
        file, make_ref, size = NETS[name]
        size = args.size if args.size and size > 32 else size
        batch = args.cifar_batch if size <= 32 else args.batch
        ours, ref = build_model(ROOT / "architectures" / file, input_shape=(3, size, size)), make_ref()
        x, y = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
        for mode in ("train", "eval"):
            ours.train(mode == "train"), ref.train(mode == "train")
            make = (lambda m, xx, bf=False: train_step_fn(m, xx, y, bf)) if mode == "train" else infer_fn
            a, b = ab(make(ours, x), make(ref, x), args.iters, args.rounds, batch)
            print(f"| {name} | {size} | {batch} | {mode} | {a:.1f} | {b:.1f} | {a / b:.3f} |", flush=True)
            for v in args.variants:
                # a separate copy: .to(memory_format=...) converts a module in place
                model, xv, bf16 = variant(copy.deepcopy(ours), v, x)
                fn = train_step_fn(model, xv, y, bf16) if mode == "train" else infer_fn(model, xv, bf16)
                a2, a1 = ab(fn, make(ours, x), args.iters, args.rounds, batch)
                print(f"| {name} {v} | {size} | {batch} | {mode} | {a2:.1f} | {a1:.1f} (ours eager fp32) | "
                      f"{a2 / a1:.3f} |", flush=True)


if __name__ == "__main__":
    main()
