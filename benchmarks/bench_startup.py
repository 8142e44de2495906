"""Start-up cost of the model tools: `python -m pipeline summary FILE` and `--help` against
`python -c "import torch"`, measured side by side (interleaved rounds, medians), and which heavy
modules a summary loads (Lightning must not be among them).

    python benchmarks/bench_startup.py [--rounds 5] [--file architectures/resnet50.yaml]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("lightning", "torchmetrics", "timm", "torchvision", "torch._dynamo")


def seconds(args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def loaded_by_summary(file: str) -> list[str]:
    code = ("import io, contextlib, sys\nfrom pipeline.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()): main(['summary', {file!r}])\n"
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         check=True, capture_output=True, text=True).stdout
    return out.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--file", default="architectures/resnet50.yaml")
    args = parser.parse_args()
    commands = {"python -c 'import torch'": ["-c", "import torch"],
                f"python -m pipeline summary {args.file}": ["-m", "pipeline", "summary", args.file],
                "python -m pipeline --help": ["-m", "pipeline", "--help"],
                "python -c 'import torch, torch._dynamo'": ["-c", "import torch, torch._dynamo"]}
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, argv in commands.items():  # interleaved: load changes hit every command alike
            times[name].append(seconds(argv))
    base = statistics.median(times["python -c 'import torch'"])
    print(f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, {args.rounds} rounds, "
          f"{time.strftime('%Y-%m-%d')}")
    print("| command | s (median) | vs import torch |")
    print("|---|---:|---:|")
    for name, values in times.items():
        t = statistics.median(values)
        print(f"| `{name}` | {t:.2f} | {t / base:.2f}x |")
    print(f"\nheavy modules a summary loads: {', '.join(loaded_by_summary(args.file)) or 'none'}")


if __name__ == "__main__":
    main()
