"""CPU threads per process: PyTorch's default against the pipeline's choice, idle and under contention.

    python benchmarks/bench_threads.py [--epochs 3] [--rounds 3]

Runs the README's main job (`fit --config lightning_config.yaml`, `--trainer.max_epochs E`) as a child
process in four settings, each with PyTorch's default intra-op threads (every core of the machine:
``OMP_NUM_THREADS`` = the core count) and with the pipeline's choice (threads.py: the CPUs this process
may use / the processes on this machine):

- one process, machine idle;
- one process, one competing busy process (a Python loop pinned to nothing, like another user's job);
- two CPU DDP processes (gloo), machine idle: the case where the choice differs on a 2-core machine.

Prints the training wall (median of --rounds, from the child's start to its exit) for each, and the
ratio default / chosen. Read `uptime` first: other load flatters or hurts one side.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parents[1]


def busy(stop) -> None:  # a competing process: one core's worth of pure-Python work
    while not stop.is_set():
        sum(i * i for i in range(10000))


def run(epochs: int, threads: int | None, ddp: bool, root: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "LOCAL_WORLD_SIZE")}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    args = [sys.executable, "-m", "pipeline", "fit", "--config", "lightning_config.yaml", "--trainer.max_epochs",
            str(epochs), "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false"]
    if ddp:
        args += ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    start = time.perf_counter()
    subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"{cores} cores; load before: {os.getloadavg()[0]:.2f}; {args.epochs} epochs, median of {args.rounds}")
    print("| setting | default threads s | chosen threads s | default / chosen |\n|---|---:|---:|---:|")
    with TemporaryDirectory() as tmp:
        for name, ddp, contended in (("1 process, idle", False, False), ("1 process, 1 busy process", False, True),
                                     ("2 DDP processes, idle", True, False)):
            stop = multiprocessing.Event()
            competitor = multiprocessing.Process(target=busy, args=(stop,)) if contended else None
            if competitor:
                competitor.start()
            try:
                times = {"default": [], "chosen": []}
                for r in range(args.rounds):
                    for side, threads in (("default", cores), ("chosen", None)):
                        times[side].append(run(args.epochs, threads, ddp, Path(tmp) / f"{side}{r}"))
            finally:
                if competitor:
                    stop.set()
                    competitor.join()
            d, c = statistics.median(times["default"]), statistics.median(times["chosen"])
            print(f"| {name} | {d:.1f} | {c:.1f} | {d / c:.2f}x |", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
