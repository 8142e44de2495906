"""`python -m pipeline experiment NAME`: the papers' comparisons as runs of `fit`, a plot and a table.

An experiment is a YAML file (``experiments/NAME.yaml``): a title, optionally a base ``config``
(default ``experiments/base.yaml``), and ``runs``: run name -> the fit options that make it differ,
written as dotted keys (``model.arch: architectures/plain56_cifar.yaml``). Each run is an ordinary
``fit`` (its logs under ``--out/RUN``); options after NAME go to every run, so the same experiment
runs on other data or hardware (``--data.class_path ... --trainer.accelerator gpu``). The curves
(training and validation error per epoch, from the runs' metrics.csv) are drawn with matplotlib into
``NAME.png`` and summarised in ``NAME.md``.
"""
from __future__ import annotations

import argparse
import csv
import shlex
import time
from pathlib import Path
from typing import Any

import yaml

from ..errors import ArchError

FOLDER = Path("experiments")


def known_experiments(folder: Path = FOLDER) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml") if p.stem != "base")


def load_experiment(name: str) -> tuple[Path, dict[str, Any]]:
    """The experiment file that NAME (a name in experiments/ or a path) names, read and checked."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else FOLDER / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(known_experiments()) or "none (run from the repository root)"
        raise ArchError(f"experiment '{name}': no file {path}; known experiments: {known}")
    spec = yaml.safe_load(path.read_text())
    runs = spec.get("runs") if isinstance(spec, dict) else None
    if not isinstance(runs, dict) or not runs or not all(isinstance(v, dict) for v in runs.values()):
        raise ArchError(f"{path}: expected 'runs:' mapping run names to fit options, e.g. "
                        "'plain-20: {model.arch: architectures/plain20_cifar.yaml}'")
    return path, spec


def option(key: str, value: Any) -> list[str]:
    """``model.vars, {depth: 56}`` -> ``["--model.vars", "{depth: 56}"]`` (values as YAML flow text)."""
    text = value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return [f"--{key}", text]


def epoch_curves(root: Path) -> dict[str, list[float]]:
    """Per-epoch training and validation error (%) and training loss from a run's newest metrics.csv."""
    files = sorted(root.glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    if not files:
        raise FileNotFoundError(f"no metrics.csv under {root}")
    train, val, loss = {}, {}, {}
    for row in csv.DictReader(files[-1].open()):
        epoch = int(row["epoch"]) if row.get("epoch") else None
        if epoch is None:
            continue
        if row.get("train/acc"):
            train[epoch] = 100 * (1 - float(row["train/acc"]))
        if row.get("val/acc"):
            val[epoch] = 100 * (1 - float(row["val/acc"]))
        if row.get("train/loss"):
            loss.setdefault(epoch, []).append(float(row["train/loss"]))
    return {"train_err": [train[e] for e in sorted(train)], "val_err": [val[e] for e in sorted(val)],
            "train_loss": [sum(v) / len(v) for _, v in sorted(loss.items())]}


def plot(title: str, curves: dict[str, dict[str, list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, key, label in zip(axes, ("train_err", "val_err"), ("training error (%)", "validation error (%)")):
        for run, c in curves.items():
            ax.plot(range(1, len(c[key]) + 1), c[key], marker="o", markersize=3, label=run)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def table(title: str, command: str, curves: dict[str, dict[str, list[float]]], seconds: dict[str, float],
          image: str) -> str:
    lines = [f"# {title}", "", f"Made by `{command}`.", "", f"![curves]({image})", "",
             "| run | epochs | final training error | final validation error | best validation error | "
             "final training loss | time |", "|---|---|---|---|---|---|---|"]
    for run, c in curves.items():
        def last(key):
            return f"{c[key][-1]:.2f}%" if c[key] else "-"
        best = f"{min(c['val_err']):.2f}%" if c["val_err"] else "-"
        loss = f"{c['train_loss'][-1]:.4f}" if c["train_loss"] else "-"
        lines.append(f"| {run} | {len(c['train_err'])} | {last('train_err')} | {last('val_err')} | {best} | {loss} "
                     f"| {seconds[run]:.0f} s |")
    return "\n".join(lines) + "\n"


def run_experiment(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline experiment", allow_abbrev=False,
                                     description="Train an experiment's runs (fit), then plot and tabulate them. "
                                                 "Other options go to every run's fit, e.g. --trainer.max_epochs 30.")
    parser.add_argument("name", help=f"experiments/NAME.yaml or a path; known: {', '.join(known_experiments())}")
    parser.add_argument("--out", help="folder of the runs' logs (default runs/experiments/NAME)")
    parser.add_argument("--results", help="folder of NAME.png and NAME.md (default: --out)")
    parser.add_argument("--runs", help="comma-separated subset of the runs")
    args, extra = parser.parse_known_args(argv)
    path, spec = load_experiment(args.name)
    name = path.stem
    runs = spec["runs"]
    if args.runs:
        chosen = args.runs.split(",")
        unknown = [r for r in chosen if r not in runs]
        if unknown:
            raise ArchError(f"--runs: no run '{unknown[0]}' in {path}; its runs: {', '.join(runs)}")
        runs = {r: runs[r] for r in chosen}
    out = Path(args.out or f"runs/experiments/{name}")
    results = Path(args.results or out)
    base = spec.get("config", str(FOLDER / "base.yaml"))
    from .cli import run_lightning

    curves, seconds = {}, {}
    for run, options in runs.items():
        fit = ["fit", "--config", base]
        for key, value in options.items():
            fit += option(key, value)
        fit += [*extra, "--trainer.default_root_dir", str(out / run)]
        print(f"[{name}] {run}: python -m pipeline {shlex.join(fit)}", flush=True)
        start = time.perf_counter()
        rc = run_lightning(fit)
        seconds[run] = time.perf_counter() - start
        if rc != 0:
            return rc
        curves[run] = epoch_curves(out / run)
    results.mkdir(parents=True, exist_ok=True)
    plot(spec.get("title", name), curves, results / f"{name}.png")
    command = shlex.join(["python", "-m", "pipeline", "experiment", *argv])
    (results / f"{name}.md").write_text(table(spec.get("title", name), command, curves, seconds, f"{name}.png"))
    print(f"[{name}] wrote {results / f'{name}.png'} and {results / f'{name}.md'}")
    return 0
