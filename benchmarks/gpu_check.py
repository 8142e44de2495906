"""One-shot GPU check (run by benchmarks/gpu_check.sh): a Markdown table of training throughput and memory.

* ResNet-50 from our YAML vs torchvision's resnet50 vs timm's resnet50, in the same loop: train
  images/s at 224x224, bf16 autocast, channels-last, SGD with momentum; ratios against the YAML net;
  then the same with torch.compile (what --model.compile true does);
* EfficientNet-B0 and ConvNeXt-T the same way when those zoo files exist;
* peak training memory of the YAML ResNet-50 vs the plan's estimate (summary --batch B --precision bf16);
* the default run (python -m pipeline fit --config lightning_config.yaml) on the device.

``--dry-run`` runs every step of the same code path at toy sizes (for a CPU without a GPU, and
for the test): the numbers it prints mean nothing.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

# zoo file -> (torchvision name, timm name)
NETS = {"resnet50": ("resnet50", "resnet50"), "efficientnet_b0": ("efficientnet_b0", "efficientnet_b0"),
        "convnext_tiny": ("convnext_tiny", "convnext_tiny")}


def build(impl: str, name: str, shape: tuple[int, ...]) -> torch.nn.Module:
    if impl == "yaml":
        from pipeline import build_model

        return build_model(ROOT / "architectures" / f"{name}.yaml", shape)
    tv_name, timm_name = NETS[name]
    if impl == "torchvision":
        import torchvision

        return getattr(torchvision.models, tv_name)(weights=None)
    import timm

    return timm.create_model(timm_name, pretrained=False)


def logits(out) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.logits  # YAML nets with aux heads: main output


def images_per_second(model: torch.nn.Module, shape, batch: int, device: str, compiled: bool, warmup: int,
                      steps: int, classes: int = 1000) -> float:
    """Train steps (bf16 autocast, channels-last, SGD momentum) on one resident batch; images/s."""
    model = model.to(device).train().to(memory_format=torch.channels_last)
    if compiled:
        # the GPU run compiles for real; the dry run only checks the path (inductor on CPU takes minutes)
        model = torch.compile(model, backend="inductor" if device == "cuda" else "eager")
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, *shape, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = F.cross_entropy(logits(model(x)).float(), y)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return batch * steps / (time.perf_counter() - start)


def default_run(device: str, dry: bool, root: Path) -> str:
    args = [sys.executable, "-m", "pipeline", "fit", "--config", "lightning_config.yaml",
            "--trainer.accelerator", "cuda" if device == "cuda" else "cpu",
            "--trainer.default_root_dir", str(root)]
    args += ["--trainer.fast_dev_run", "true"] if dry else ["--trainer.precision", "bf16-mixed"]
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - start
    if proc.returncode:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise SystemExit(f"default run failed (exit {proc.returncode}): {tail}")
    acc = ""
    metrics = sorted(root.glob("version_*/metrics.csv"))
    if metrics:
        import csv

        rows = [r for r in csv.DictReader(metrics[-1].open()) if r.get("val/acc")]
        acc = f", val/acc {float(rows[-1]['val/acc']):.3f}" if rows else ""
    return f"default run ({'fast_dev_run' if dry else 'bf16-mixed'}) on {device}: {seconds:.0f} s wall{acc}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dry-run", action="store_true", help="toy sizes: checks the code path, not the speed")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--no-default-run", action="store_true", help="the table and memory only")
    parser.add_argument("--out", default=str(ROOT / "runs" / "gpu_check"), help="where the default run writes")
    args = parser.parse_args()
    dry = args.dry_run
    shape = (3, 32, 32) if dry else (3, 224, 224)
    batch, warmup, steps = (2, 1, 1) if dry else (args.batch, 10, 30)
    device = args.device
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU (dry run)" if dry else "CPU"
    print(f"device: {name}; torch {torch.__version__}; input {'x'.join(map(str, shape))}, batch {batch}, "
          f"bf16 autocast, channels-last, SGD momentum\n", flush=True)

    nets = [n for n in NETS if (ROOT / "architectures" / f"{n}.yaml").is_file()]
    if dry:
        nets = nets[:1]  # every net takes the same code path; one checks it (the CPU builds are slow)
    modes = [False] if args.no_compile else [False, True]
    print("| net | mode | YAML img/s | torchvision img/s | timm img/s | YAML / torchvision | YAML / timm |")
    print("|---|---|---:|---:|---:|---:|---:|", flush=True)
    for net in nets:
        for compiled in modes:
            speed = {}
            for impl in ("yaml", "torchvision", "timm"):
                torch.manual_seed(0)
                model = build(impl, net, shape)
                speed[impl] = images_per_second(model, shape, batch, device, compiled, warmup, steps)
                del model
                if device == "cuda":
                    torch.cuda.empty_cache()
            print(f"| {net} | {'compiled' if compiled else 'eager'} | {speed['yaml']:.4g} | "
                  f"{speed['torchvision']:.4g} | {speed['timm']:.4g} | {speed['yaml'] / speed['torchvision']:.2f} | "
                  f"{speed['yaml'] / speed['timm']:.2f} |", flush=True)

    from bench_memory import measure

    mem_batch = 2 if dry else 64
    estimate, measured = measure("resnet50", shape, mem_batch, device, "bf16")
    print(f"\npeak training memory, YAML resnet50, batch {mem_batch}, bf16 autocast: measured "
          f"{measured / 2**20:.0f} MiB, plan estimate {estimate / 2**20:.0f} MiB "
          f"({(estimate - measured) / measured:+.0%})", flush=True)
    if not args.no_default_run:
        print(default_run(device, dry, Path(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
