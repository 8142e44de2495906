"""A study's results: trials.csv, a Markdown table, best.yaml and Optuna's matplotlib plots.

Everything is read from the study (its storage) and the best trial's own run folder; nothing here
keeps a second list of trials.
"""
from __future__ import annotations

import csv
import os
import shlex
import warnings
from pathlib import Path

import yaml

from .engine import REPORT_CALLBACK
from .spec import Spec


def _rows(spec: Spec, study) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        row = {"number": t.number, "state": t.state.name.lower()}
        for i, metric in enumerate(spec.metrics):
            row[metric] = f"{t.values[i]:.6g}" if t.values else ""
        row.update({name: t.params.get(name, "") for name in (d.name for d in spec.space)})
        row.update({"macs": t.user_attrs.get("macs", ""), "params": t.user_attrs.get("params", ""),
                    "seconds": f"{seconds:.1f}" if seconds is not None else "",
                    "folder": t.user_attrs.get("folder", ""), "reason": t.user_attrs.get("reason", "")})
        rows.append(row)
    return rows


def best_trial(spec: Spec, study):
    """The best finished trial; with two objectives, the Pareto-optimal one best on the first metric."""
    from optuna.trial import TrialState

    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return None
    if len(spec.metrics) == 1:
        return study.best_trial
    sign = 1 if spec.directions[0] == "minimize" else -1
    return min(study.best_trials, key=lambda t: sign * t.values[0])


def best_config(trial, out: Path) -> dict | None:
    """The complete config the best trial's fit saved (with every option of the command line), without
    the sweep's reporting callback, training into ``out/best``."""
    root = Path(trial.user_attrs.get("folder", ""))
    saved = sorted(root.glob("version_*/config.yaml"), key=lambda p: int(p.parent.name.split("_")[-1]))
    source = saved[-1] if saved else root / "trial.yaml"
    if not source.is_file():
        return None
    config = yaml.safe_load(source.read_text())
    trainer = config.get("trainer") or {}
    if isinstance(trainer.get("callbacks"), list):
        trainer["callbacks"] = [c for c in trainer["callbacks"]
                                if not (isinstance(c, dict) and c.get("class_path") == REPORT_CALLBACK)] or None
    trainer["default_root_dir"] = str(out / "best")
    config["trainer"] = trainer
    config.pop("ckpt_path", None)
    return config


def _plots(spec: Spec, study, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    first = spec.metrics[0]
    plots = {"history.png": lambda: vis.plot_optimization_history(study, target=lambda t: t.values[0],
                                                                   target_name=first),
             "importances.png": lambda: vis.plot_param_importances(study, target=lambda t: t.values[0],
                                                                    target_name=first)}
    if len(spec.metrics) == 2:
        plots["pareto.png"] = lambda: vis.plot_pareto_front(study, target_names=spec.metrics)
    written = []
    for name, draw in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                ax = draw()
            figure = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            figure.set_size_inches(8, 5)
            figure.savefig(out / name, dpi=100, bbox_inches="tight")
            plt.close(figure)
            written.append(name)
        except Exception:  # too few finished trials for this plot (importances needs two or more)
            plt.close("all")
    return written


def _markdown(spec: Spec, rows: list[dict], command: str, best, plots: list[str]) -> str:
    columns = list(dict.fromkeys(["number", "state", *spec.metrics, *(d.name for d in spec.space), "macs", "params",
                                  "seconds", "reason"]))  # a second objective may be macs or params
    lines = [f"# Sweep {spec.name}", "", f"Made by `{command}`.", ""]
    if best is not None:
        values = ", ".join(f"{m} {v:.4g}" for m, v in zip(spec.metrics, best.values))
        lines += [f"Best: trial {best.number} ({values}); `python -m pipeline fit --config best.yaml` trains it "
                  "again.", ""]
    lines += [f"![{p}]({p})" for p in plots] + ([""] if plots else [])
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    def cell(value) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value).replace("|", "/")

    for row in rows:
        lines.append("| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def write_results(spec: Spec, study, out: Path, argv: list[str]) -> Path | None:
    """Write the results into ``out``; returns best.yaml's path (None before a trial completes)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = _rows(spec, study)
    tmp = out / "trials.csv.tmp"
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["number"])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out / "trials.csv")  # several SLURM workers may finish at once: whole files only
    best = best_trial(spec, study)
    path = None
    if best is not None:
        config = best_config(best, out)
        if config is not None:
            path = out / "best.yaml"
            (out / "best.yaml.tmp").write_text(f"# best trial {best.number} of sweep {spec.name}\n"
                                               + yaml.safe_dump(config, sort_keys=False))
            os.replace(out / "best.yaml.tmp", path)
    plots = _plots(spec, study, out) if best is not None else []
    command = shlex.join(["python", "-m", "pipeline", "sweep", *argv])
    (out / "sweep.md").write_text(_markdown(spec, rows, command, best, plots))
    return path
