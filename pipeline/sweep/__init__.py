"""`python -m pipeline sweep SPEC.yaml`: many `fit` runs searched by Optuna, on one machine or many.

spec.py reads the spec file, budget.py checks a point's static figures, engine.py runs workers on
Optuna's study (report.py reports inside a trial's fit), results.py writes the tables, best.yaml and
plots. Optuna owns the storage, samplers, pruners and retries.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from pathlib import Path

import yaml

from ..user_errors import UsageError, user_message

# options the sweep sets for each trial itself
OWN_OPTIONS = ("--trainer.default_root_dir", "--ckpt_path", "--config", "-c")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        raise UsageError(f"{self.prog}: {message}")


def check_fit_options(spec, extra: list[str], out: Path) -> None:
    """The first point of the space, with the fixed and command-line options, must be a valid fit
    config: an unknown or mistyped option ends the sweep here, before any trial."""
    from ..training.cli import run_lightning
    from .config import first_point, trial_config

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "check.yaml"
        path.write_text(yaml.safe_dump(trial_config(spec, first_point(spec), out), sort_keys=False))
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                run_lightning(["fit", "--config", str(path), *extra, "--print_config"])
            except SystemExit as done:  # --print_config exits once the config is parsed and checked
                if done.code not in (0, None):
                    raise UsageError(f"{spec.path}: the fit options do not parse (exit status {done.code})") from None
            except Exception as err:
                message = user_message(err)
                if message is None:
                    raise
                # said of the spec: the options come from its config, fixed and space, and the command line
                raise UsageError(f"{spec.path}: fit options: {message.removeprefix('error: ')}") from None


def check_points(spec) -> None:
    """Every architecture of the space plans with the first value of every other option (variables
    the file does not define, a missing file: one line now rather than a failed trial each)."""
    from .budget import static_figures
    from .config import first_point, trial_config
    from .spec import VARIANT

    point = first_point(spec)
    arch = next((d for d in spec.space if d.name == "model.arch"), None)
    for variant in spec.variants or [None]:  # each variant's net too (experiments: one net per run)
        for choice in (arch.choices if arch is not None and arch.kind == "choice" else [None]):
            params = point if choice is None else {**point, "model.arch": choice}
            static_figures(trial_config(spec, params if variant is None else {**params, VARIANT: variant}), {"macs"})


def run_sweep(argv: list[str]) -> int:
    parser = _Parser(prog="python -m pipeline sweep", allow_abbrev=False,
                     description="Search fit options with Optuna: each trial is a fit run under --out. Other "
                                 "options go to every trial's fit, e.g. --trainer.max_epochs 5.")
    parser.add_argument("spec", help="the sweep's spec file (YAML): config, metric, direction, trials, space, ...")
    parser.add_argument("--out", help="folder of the trials' runs and the results (default runs/sweeps/SPEC_NAME)")
    parser.add_argument("--storage", help="Optuna storage: an RDB URL (default sqlite:///OUT/study.db) or "
                                          "journal:FILE (a journal file on a shared file system)")
    parser.add_argument("--study", help="study name (default: the spec file's name)")
    parser.add_argument("--workers", type=int, default=1,
                        help="trials at a time on this machine, each worker its own process; 0: create the study "
                             "and run no trial (before starting workers elsewhere)")
    parser.add_argument("--trials", type=int, help="number of trials (replaces the spec's trials:)")
    args, extra = parser.parse_known_args(argv)
    taken = [a for a in extra if a.split("=")[0] in OWN_OPTIONS]
    if taken:
        raise UsageError(f"{taken[0].split('=')[0]} is set by the sweep for each trial (use --out)")
    if args.workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {args.workers}")
    if args.trials is not None and args.trials < 1:
        raise UsageError(f"--trials must be 1 or more, got {args.trials}")
    from .engine import open_study, run_workers, storage_url
    from .results import write_results
    from .spec import load_spec

    spec = load_spec(args.spec, args.trials)
    out = Path(args.out or f"runs/sweeps/{spec.name}").resolve()
    name = args.study or spec.name
    check_points(spec)
    check_fit_options(spec, extra, out)  # --out must be writable too
    url = storage_url(args.storage, out)
    study = open_study(spec, url, name, create=True)
    pruner = spec.pruner if len(spec.metrics) == 1 else "none: Optuna prunes single-objective studies only"
    print(f"[{name}] {spec.trials} trials ({spec.sampler}, pruner {pruner}"
          + (f", budget {', '.join(f'{k} {v:g}' for k, v in spec.budget.items())}" if spec.budget else "")
          + f") in {out}, study in {url}", flush=True)
    if args.workers == 0:
        return 0
    settings = {"spec_path": str(args.spec), "trials": args.trials, "out": str(out), "url": url,
                "study_name": name, "extra": extra}
    code = run_workers(args.workers, settings)
    best = write_results(spec, study, out, argv)
    print(f"[{name}] results: {out / 'trials.csv'}, {out / 'sweep.md'}"
          + (f", {best} (python -m pipeline fit --config {best})" if best else
             ", no best.yaml (no completed trial with a run folder)"), flush=True)
    return code
