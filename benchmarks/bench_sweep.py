"""Sweeps: the per-trial overhead of `sweep` against the same `fit` alone, and 2 workers against 1.

    python benchmarks/bench_sweep.py [--epochs 2] [--rounds 3]

(1) Overhead: the default job (`fit --config lightning_config.yaml --trainer.max_epochs E`) as a child
process, against `sweep` of a one-point grid whose only trial is that same fit (spec checks, study,
budget check, the trial's child fit, results and plots). (2) Workers: a 4-point grid of that fit
(two learning rates x two widths) with `--workers 1` and `--workers 2`. Median of --rounds walls,
each a fresh study; ratios printed. Read `uptime` first: other load flatters or hurts one side.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import yaml

ROOT = Path(__file__).resolve().parents[1]


def wall(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def spec(folder: Path, space: dict, epochs: int) -> Path:
    path = folder / f"grid{len(space)}.yaml"
    path.write_text(yaml.safe_dump({"config": "lightning_config.yaml", "metric": "val/acc", "sampler": "grid",
                                    "pruner": "none", "space": space, "fixed": {"trainer.max_epochs": epochs}}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; load before: {os.getloadavg()[0]:.2f}; {args.epochs} epochs per fit, "
          f"median of {args.rounds}")
    times: dict[str, list[float]] = {"fit": [], "sweep": [], "1 worker": [], "2 workers": []}
    with TemporaryDirectory() as tmp:
        folder = Path(tmp)
        one = spec(folder, {"model.optimizer.lr": [0.05]}, args.epochs)
        four = spec(folder, {"model.optimizer.lr": [0.05, 0.1], "model.vars.width": [16, 32]}, args.epochs)
        for r in range(args.rounds):
            times["fit"].append(wall(["fit", "--config", "lightning_config.yaml", "--trainer.max_epochs",
                                      str(args.epochs), "--trainer.default_root_dir", str(folder / f"fit{r}")]))
            times["sweep"].append(wall(["sweep", str(one), "--out", str(folder / f"one{r}")]))
            for workers in (1, 2):
                key = f"{workers} worker{'s' if workers > 1 else ''}"
                times[key].append(wall(["sweep", str(four), "--out", str(folder / f"four{r}w{workers}"),
                                        "--workers", str(workers)]))
    m = {k: statistics.median(v) for k, v in times.items()}
    print(f"| measure | seconds |\n|---|---:|\n| fit alone | {m['fit']:.1f} |\n| sweep of that one fit | "
          f"{m['sweep']:.1f} |\n| 4-trial grid, 1 worker | {m['1 worker']:.1f} |\n| 4-trial grid, 2 workers | "
          f"{m['2 workers']:.1f} |")
    # the one-trial sweep's extra is mostly per sweep (its own start-up with optuna and torch, the study,
    # results and plots), not per trial: the 4-trial grid shows what each further trial adds
    print(f"a one-trial sweep above the fit: {m['sweep'] - m['fit']:.1f} s ({m['sweep'] / m['fit']:.2f}x the fit); "
          f"each trial of the 4-trial grid (1 worker), that fixed part taken off: "
          f"{(m['1 worker'] - (m['sweep'] - m['fit'])) / 4:.1f} s against {m['fit']:.1f} s for the fit alone; "
          f"2 workers / 1 worker: {m['2 workers'] / m['1 worker']:.2f}x the wall")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
