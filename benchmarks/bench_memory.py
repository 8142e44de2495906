"""Training-memory estimate (`summary --batch B`) vs the peak measured in a real training step.

On CPU the peak is read from torch.profiler's allocation events of one SGD step (after a warm-up
step, so momentum buffers exist), plus the tensors alive before the step (weights, optimizer
state, the batch), which the profiler does not see being allocated. On CUDA (--device cuda) it is
torch.cuda.max_memory_allocated. Prints a Markdown table; the error is (estimate - measured) / measured.

    python benchmarks/bench_memory.py                 # a few zoo nets at small sizes, CPU
    python benchmarks/bench_memory.py --nets resnet50:3,224,224:32 --device cuda --precision bf16
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline import build_model, plan_model  # noqa: E402
from pipeline.analysis import analyse  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["resnet18:3,64,64:16", "resnet50:3,64,64:8", "mobilenet_v2:3,64,64:16", "densenet121:3,64,64:8",
           "googlenet:3,96,96:8", "vgg11_bn:3,64,64:8", "wavenet_classifier:1,4096:4"]


def loss_of(out, y):
    if isinstance(out, torch.Tensor):
        return F.cross_entropy(out, y)
    loss = F.cross_entropy(out.logits, y)
    for aux in out.aux.values():
        loss = loss + aux.weight * F.cross_entropy(aux.logits, y)
    return loss


def measure(name: str, shape: tuple[int, ...], batch: int, device: str, precision: str) -> tuple[int, int]:
    """(estimated, measured) peak bytes of one training step."""
    path = ROOT / "architectures" / f"{name}.yaml"
    plan = plan_model(path, shape)
    estimate = analyse(plan, batch, precision, "sgd").train_memory_bytes
    torch.manual_seed(0)
    model = build_model(path, shape).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, plan.out_shape[0], (batch,), device=device)
    dtype = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}[precision]

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            loss = loss_of(model(x), y)
        loss.backward()
        opt.step()

    step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return estimate, torch.cuda.max_memory_allocated()
    before = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers(), x, y])
    before += sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values()
                  if isinstance(v, torch.Tensor))
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    # an op's own allocations net of its own frees ("self"), and frees outside ops ("[memory]"), in time order
    events = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events()
                    if e.self_cpu_memory_usage)
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return estimate, before + peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="*", default=DEFAULT, help="NAME:C,H,W:BATCH")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="32", choices=["32", "bf16", "16"])
    args = parser.parse_args()
    print("| net | input | batch | precision | estimate (MiB) | measured peak (MiB) | error |")
    print("|---|---|---:|---|---:|---:|---:|")
    errors = []
    for spec in args.nets:
        name, shape, batch = spec.split(":")
        dims = tuple(int(d) for d in shape.split(","))
        est, got = measure(name, dims, int(batch), args.device, args.precision)
        errors.append((est - got) / got)
        print(f"| {name} | {'x'.join(map(str, dims))} | {batch} | {args.precision} | {est / 2**20:.1f} | "
              f"{got / 2**20:.1f} | {errors[-1]:+.0%} |", flush=True)
    print(f"\nmean absolute error {sum(map(abs, errors)) / len(errors):.0%}, "
          f"largest {max(errors, key=abs):+.0%} ({args.device}, torch {torch.__version__})")


if __name__ == "__main__":
    main()
