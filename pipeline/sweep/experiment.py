"""`python -m pipeline experiment NAME`: the papers' comparisons, as grid studies on the sweep's engine.

An experiment is a YAML file (``experiments/NAME.yaml``): a title, optionally a base ``config``
(default ``experiments/base.yaml``), ``runs`` (run name -> the fit options that make it differ, as
dotted keys: ``model.arch: architectures/plain56_cifar.yaml``) and optionally ``claims`` (``{better:
resnet-20, worse: plain-20, metric: train_err}``: the first ends with the lower error). It becomes a
sweep spec (``OUT/NAME.sweep.yaml``: the runs as ``variants``, ``seed_everything`` over ``--seeds K``,
a grid), run by the same workers on the same study storage as `sweep`: a killed experiment continues
where it stopped when run again, and ``--workers N`` runs N of its fits at a time. Then the curves
(training and validation error per epoch, from each trial's metrics.csv) are drawn as the mean over
seeds with their spread into ``NAME.png``, tabulated in ``NAME.md``, and each claim is "shown" only
when every seed agrees.
"""
from __future__ import annotations

import argparse
import csv
import shlex
import statistics
import textwrap
from pathlib import Path
from typing import Any

import yaml

from ..errors import ArchError

FOLDER = Path("experiments")
ERRORS = {"train_err": "training error (%)", "val_err": "validation error (%)"}


def known_experiments(folder: Path = FOLDER) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml") if p.stem != "base")


def load_experiment(name: str) -> tuple[Path, dict[str, Any]]:
    """The experiment file that NAME (a name in experiments/ or a path) names, read and checked."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else FOLDER / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(known_experiments()) or "none (run from the repository root)"
        raise ArchError(f"experiment '{name}': no file {path}; known experiments: {known}")
    from ..language.loader import check_aliases

    text = path.read_text()
    check_aliases(text, str(path))
    spec = yaml.safe_load(text)
    runs = spec.get("runs") if isinstance(spec, dict) else None
    if not isinstance(runs, dict) or not runs or not all(isinstance(v, dict) for v in runs.values()):
        raise ArchError(f"{path}: expected 'runs:' mapping run names to fit options, e.g. "
                        "'plain-20: {model.arch: architectures/plain20_cifar.yaml}'")
    for claim in spec.get("claims") or []:
        if not isinstance(claim, dict) or claim.get("better") not in runs or claim.get("worse") not in runs \
                or claim.get("metric") not in ERRORS:  # not `on:`: PyYAML reads that key as true
            raise ArchError(f"{path}: claims: expected {{better: RUN, worse: RUN, metric: train_err|val_err}} with runs "
                            f"of this file, got {claim!r}")
    return path, spec


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


def sweep_spec(path: Path, spec: dict, runs: dict, seeds: int) -> dict:
    """The experiment as a sweep spec: a grid over the runs (variants) and the seeds."""
    return {"config": str(spec.get("config", FOLDER / "base.yaml")), "metric": "val/acc", "direction": "maximize",
            "sampler": "grid", "pruner": "none", "variants": runs,
            "space": {"seed_everything": list(range(seeds))}, "trials": len(runs) * seeds}


def collect(study) -> dict[str, dict[int, tuple[dict[str, list[float]], float, int]]]:
    """run -> seed -> (curves, seconds, MACs per image) of the study's completed trials."""
    from optuna.trial import TrialState

    found: dict[str, dict[int, tuple]] = {}
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds()
            found.setdefault(t.params["variant"], {})[t.params["seed_everything"]] = \
                (epoch_curves(Path(t.user_attrs["folder"])), seconds, int(t.user_attrs.get("macs", 0)))
    return found


def band(per_seed: list[list[float]]) -> tuple[list[float], list[float], list[float]]:
    """Mean, lowest and highest value per epoch over the seeds (as far as every seed reached)."""
    length = min(len(c) for c in per_seed)
    columns = [[c[e] for c in per_seed] for e in range(length)]
    return [statistics.fmean(c) for c in columns], [min(c) for c in columns], [max(c) for c in columns]


def plot(title: str, results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, (key, label) in zip(axes, ERRORS.items()):
        for run, seeds in results.items():
            mean, low, high = band([curves[key] for curves, *_ in seeds.values()])
            epochs = range(1, len(mean) + 1)
            line, = ax.plot(epochs, mean, marker="o", markersize=3, label=f"{run} ({len(seeds)} seeds)")
            if len(seeds) > 1:
                ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2)
        ax.set(xlabel="epoch", ylabel=label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"{title}\n(mean over seeds; shaded: lowest to highest)")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_macs(title: str, results: dict, path: Path) -> None:
    """Final validation error against MACs per image, one point per run (mean over seeds, range as a bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for run, seeds in results.items():
        errors = final(seeds, "val_err")
        macs = next(iter(seeds.values()))[2]
        mean = statistics.fmean(errors)
        ax.errorbar([macs], [mean], yerr=[[mean - min(errors)], [max(errors) - mean]], marker="o", capsize=3)
        ax.annotate(run, (macs, mean), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(xscale="log", xlabel="MACs per image", ylabel="final validation error (%)")
    ax.set_title(textwrap.fill(title, 60), fontsize=10)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def final(seeds: dict, key: str) -> list[float]:
    return [curves[key][-1] for curves, *_ in seeds.values() if curves[key]]


def spread(values: list[float], unit: str = "%", digits: int = 2) -> str:
    if not values:
        return "-"
    mean = f"{statistics.fmean(values):.{digits}f}{unit}"
    return mean if len(values) == 1 else f"{mean} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def claim_lines(claims: list[dict], results: dict) -> list[str]:
    """Each claim, shown only when it holds for every seed both runs share."""
    lines = []
    for c in claims:
        better, worse, key = results.get(c["better"], {}), results.get(c["worse"], {}), c["metric"]
        seeds = sorted(set(better) & set(worse))
        holds = [better[s][0][key][-1] < worse[s][0][key][-1] for s in seeds
                 if better[s][0][key] and worse[s][0][key]]
        verdict = "**shown**" if holds and all(holds) else "**not shown**"
        lines.append(f"- {verdict}: {c['better']} ends with a lower {ERRORS[key][:-4]} than {c['worse']} "
                     f"({sum(holds)} of {len(holds)} seeds)")
    return lines


def table(title: str, command: str, results: dict, claims: list[dict], image: str, macs_image: str = "") -> str:
    lines = [f"# {title}", "", f"Made by `{command}`.", "", f"![curves]({image})", "",
             *([f"![final validation error against MACs]({macs_image})", ""] if macs_image else []),
             "Mean over seeds, (lowest-highest) in brackets.", "",
             "| run | MACs | seeds | epochs | final training error | final validation error | best validation error | "
             "final training loss | time per run |", "|---|---|---|---|---|---|---|---|---|"]
    for run, seeds in results.items():
        epochs = min(len(curves["train_err"]) for curves, *_ in seeds.values())
        best = [min(curves["val_err"]) for curves, *_ in seeds.values() if curves["val_err"]]
        seconds = [s for _, s, _ in seeds.values()]
        macs = next(iter(seeds.values()))[2]
        lines.append(f"| {run} | {macs / 1e6:.2f}M | {len(seeds)} | {epochs} | {spread(final(seeds, 'train_err'))} | "
                     f"{spread(final(seeds, 'val_err'))} | {spread(best)} | "
                     f"{spread(final(seeds, 'train_loss'), '', 4)} | {statistics.fmean(seconds):.0f} s |")
    if claims:
        lines += ["", "Claims (shown only when every seed agrees):", "", *claim_lines(claims, results)]
    return "\n".join(lines) + "\n"


def run_experiment(argv: list[str]) -> int:
    from ..user_errors import UsageError

    parser = argparse.ArgumentParser(prog="python -m pipeline experiment", allow_abbrev=False,
                                     description="Train an experiment's runs (fit) over seeds, then plot and "
                                                 "tabulate them. Other options go to every fit, e.g. "
                                                 "--trainer.max_epochs 30.")
    parser.add_argument("name", help=f"experiments/NAME.yaml or a path; known: {', '.join(known_experiments())}")
    parser.add_argument("--out", help="folder of the runs and the study (default runs/experiments/NAME)")
    parser.add_argument("--results", help="folder of NAME.png and NAME.md (default: --out)")
    parser.add_argument("--runs", help="comma-separated subset of the runs")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per run (seed_everything 0..K-1; default 1)")
    parser.add_argument("--workers", type=int, default=1, help="fits at a time on this machine (default 1)")
    args, extra = parser.parse_known_args(argv)
    if args.seeds < 1 or args.workers < 1:
        raise UsageError(f"--seeds and --workers must be 1 or more, got {args.seeds} and {args.workers}")
    path, spec = load_experiment(args.name)
    name = path.stem
    runs = spec["runs"]
    if args.runs:
        chosen = args.runs.split(",")
        unknown = [r for r in chosen if r not in runs]
        if unknown:
            raise ArchError(f"--runs: no run '{unknown[0]}' in {path}; its runs: {', '.join(runs)}")
        runs = {r: runs[r] for r in chosen}
    out = Path(args.out or f"runs/experiments/{name}").resolve()
    results_dir = Path(args.results or out)
    out.mkdir(parents=True, exist_ok=True)
    spec_path = out / f"{name}.yaml"  # the study is named after the file: the experiment's name
    spec_path.write_text(f"# experiment {path} as a sweep (python -m pipeline experiment {name})\n"
                         + yaml.safe_dump(sweep_spec(path, spec, runs, args.seeds), sort_keys=False))
    from . import run_sweep
    from .engine import open_study, storage_url
    from .spec import load_spec

    code = run_sweep([str(spec_path), "--out", str(out), "--workers", str(args.workers), *extra])
    study = open_study(load_spec(spec_path), storage_url(None, out), name)
    results = {run: seeds for run in runs if (seeds := collect(study).get(run))}
    if not results:
        raise ArchError(f"experiment {name}: no run finished (see the trials' fit.log under {out})")
    results_dir.mkdir(parents=True, exist_ok=True)
    claims = [c for c in spec.get("claims") or [] if c["better"] in runs and c["worse"] in runs]
    plot(spec.get("title", name), results, results_dir / f"{name}.png")
    macs_image = ""
    if len({next(iter(seeds.values()))[2] for seeds in results.values()}) > 1:  # runs of different cost
        macs_image = f"{name}_macs.png"
        plot_macs(spec.get("title", name), results, results_dir / macs_image)
    command = shlex.join(["python", "-m", "pipeline", "experiment", *argv])
    (results_dir / f"{name}.md").write_text(table(spec.get("title", name), command, results, claims, f"{name}.png",
                                                  macs_image))
    print(f"[{name}] wrote {results_dir / f'{name}.png'} and {results_dir / f'{name}.md'}")
    return code
