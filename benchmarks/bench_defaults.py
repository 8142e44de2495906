"""Which layout and precision should the default run use? The default config's net and batch
(``lightning_config.yaml``: ``architectures/digits_aux.yaml`` on 1x16x16 digits, batch 64), one
training step (forward with the auxiliary head + backward + SGD step) timed in fp32, channels-last
and bf16 autocast, alternating rounds in one run; ratios against fp32.

    python benchmarks/bench_defaults.py [--rounds 7] [--iters 50]
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
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_models import timed, train_step_fn, variant  # noqa: E402
from pipeline import build_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=50)
    args = parser.parse_args()
    config = yaml.safe_load((ROOT / "lightning_config.yaml").read_text())
    arch, batch = config["model"]["arch"], config["data"]["init_args"]["batch_size"]
    size = config["data"]["init_args"].get("image_size", 16)
    torch.manual_seed(0)
    model = build_model(ROOT / arch, input_shape=(1, size, size), classes=10).train()
    x, y = torch.randn(batch, 1, size, size), torch.randint(0, 10, (batch,))
    steps = {"fp32": train_step_fn(model, x, y)}
    for name in ("channels_last", "bf16"):
        copy_, xv, bf16 = variant(copy.deepcopy(model), name, x)
        steps[name] = train_step_fn(copy_, xv, y, bf16)
    for step in steps.values():  # warm-up
        step()
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for r in range(args.rounds):
        order = list(steps) if r % 2 == 0 else list(reversed(steps))
        for name in order:
            rates[name].append(batch * args.iters / timed(steps[name], args.iters))
    print(f"# {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d')}, {arch}, batch {batch}, 1x{size}x{size}")
    print("| variant | train img/s | vs fp32 |\n|---|---:|---:|")
    base = statistics.median(rates["fp32"])
    for name, values in rates.items():
        print(f"| {name} | {statistics.median(values):.0f} | {statistics.median(values) / base:.3f} |")


if __name__ == "__main__":
    main()
