"""The sweep on Optuna: the storage, the study, and a worker whose trials are `fit` child processes.

Optuna owns the state: trials, parameters, intermediate values, heartbeats and the retry of a trial
whose worker died. A worker here is ``study.optimize`` with an objective that (1) asks the sampler for
a point, (2) checks the budget from the static plan (a trial over it is pruned before any weight is
built), (3) writes the trial's complete fit config into its folder and runs ``python -m pipeline fit``
on it, and (4) reads the metric from the run's metrics.csv. Pruning happens inside the fit, through a
Lightning callback that reports to the same storage (pipeline/sweep/report.py).
"""
from __future__ import annotations

import csv
import inspect
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.exceptions import ExperimentalWarning

from ..errors import ArchError
from ..user_errors import UsageError
from .budget import over_budget, static_figures
from .config import first_point, get_option, set_option, trial_config
from .spec import STATIC, Spec, load_spec, make_pruner, make_sampler

REPORT_CALLBACK = "pipeline.sweep.report.SweepPruning"
LOSSES = ("train/loss", "val/loss")  # a diverged fit that was not stopped still fails its trial
# the retry of a trial whose heartbeat stopped (named RetryFailedTrialCallback before Optuna 4.9)
Retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
# heartbeats and the retry history are marked experimental since Optuna 2.9/3.0; they are what it offers
warnings.filterwarnings("ignore", category=ExperimentalWarning)


def storage_url(storage: str | None, out: Path) -> str:
    return storage or f"sqlite:///{(out / 'study.db').resolve()}"


def open_storage(url: str, heartbeat: int | None = None):
    """Optuna's storage for ``url``: ``journal:PATH`` (a journal file, for shared file systems), else an
    RDB URL (``sqlite:///FILE``, ``postgresql://...``). Heartbeats (RDB only: Optuna's journal storage
    has none) let a later worker fail a trial whose worker died, and enqueue its retry."""
    try:
        if url.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            path = Path(url[len("journal:"):])
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        # workers of one machine write the same SQLite file: wait for its lock instead of failing
        engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else None
        retry = {}
        if heartbeat:  # the argument's name since Optuna 4.9; failed_trial_callback before
            name = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in \
                inspect.signature(optuna.storages.RDBStorage).parameters else "failed_trial_callback"
            retry = {name: Retry(max_retry=3)}
        return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat,
                                          grace_period=2 * heartbeat if heartbeat else None, **retry)
    except Exception as err:  # SQLAlchemy's and the drivers' many kinds: all mean "cannot open it"
        words = " ".join(str(err).split())[:200] or type(err).__name__
        raise UsageError(f"--storage {url}: cannot open it ({words})") from None


def open_study(spec: Spec, url: str, name: str, create: bool = False, worker: int = 0):
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per trial is ours (announce)
    storage = open_storage(url, spec.heartbeat)
    sampler, pruner = make_sampler(spec, worker), make_pruner(spec.pruner)
    if create:
        study = optuna.create_study(storage=storage, study_name=name, directions=spec.directions,
                                    sampler=sampler, pruner=pruner, load_if_exists=True)
        if [d.name.lower() for d in study.directions] != spec.directions:
            raise UsageError(f"study '{name}' in {url} has directions {[d.name.lower() for d in study.directions]}, "
                             f"the spec {spec.directions}: use another --study")
        return study
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)


def counted(study) -> tuple[int, int]:
    """(finished trials that count, running trials). A failed trial that Optuna has enqueued a retry
    of does not count: its retry does."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in Retry.retry_history(t)}
    done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) or
               (t.state == TrialState.FAIL and t.number not in retried) for t in trials)
    return done, sum(t.state == TrialState.RUNNING for t in trials)


def trial_folder(out: Path, trial) -> Path:
    """A retried trial runs in its original's folder, so that ``--ckpt_path last`` resumes it."""
    history = Retry.retry_history(trial)
    return out / f"trial_{(history[0] if history else trial.number):04d}"


def last_metric(root: Path, name: str) -> float | None:
    """The last logged value of ``name`` in the run's newest metrics.csv (a resumed run logs into a new one)."""
    files = sorted(root.glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]))
    for path in reversed(files):
        with path.open() as f:
            values = [row[name] for row in csv.DictReader(f) if row.get(name)]
        if values:
            return float(values[-1])
    return None


def failure_line(log: Path, start: int = 0) -> str:
    """A failed fit's one-line reason: its ``error:`` line, else the last line (a traceback's exception);
    ``start``: where this fit's output begins in the log (a retry appends to its original's)."""
    with log.open("rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["fit exited without output"])[-1][:300]


class Objective:
    """What one worker runs for each trial (see the module's docstring)."""

    def __init__(self, spec: Spec, out: Path, url: str, study: str, extra: list[str]):
        self.spec, self.out, self.url, self.study, self.extra = spec, out, url, study, extra

    def __call__(self, trial) -> float | tuple[float, float]:
        params = {d.name: d.suggest(trial) for d in self.spec.space}
        root = trial_folder(self.out, self.frozen(trial))
        config = trial_config(self.spec, params, root)
        try:
            figures = static_figures(config, {"macs", "params", *self.spec.budget, *self.spec.metrics})
        except ArchError as err:  # this point of the space does not make a net
            raise self.failed(trial, str(err)) from None
        for key, value in figures.items():
            trial.set_user_attr(key, value)
        reason = over_budget(figures, self.spec.budget)
        if reason:
            trial.set_user_attr("reason", reason)
            raise optuna.TrialPruned(reason)
        if len(self.spec.metrics) == 1 and self.spec.pruner != "none":  # Optuna prunes single objectives only
            callbacks = get_option(config, "trainer.callbacks") or []
            set_option(config, "trainer.callbacks", [*(callbacks if isinstance(callbacks, list) else [callbacks]), {
                "class_path": REPORT_CALLBACK, "init_args": {
                    "storage": self.url, "study": self.study, "trial_id": trial._trial_id,
                    "monitor": self.spec.metrics[0], "pruner": self.spec.pruner}}])
        root.mkdir(parents=True, exist_ok=True)
        trial.set_user_attr("folder", str(root))
        (root / "trial.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        command = [sys.executable, "-m", "pipeline", "fit", "--config", str(root / "trial.yaml"), *self.extra]
        if any(root.rglob("last.ckpt")):  # a retry of a trial whose worker died: continue from there
            command += ["--ckpt_path", "last"]
            trial.set_user_attr("resumed", True)
        log = root / "fit.log"
        with log.open("a") as f:
            start = f.tell()
            f.write(f"$ {' '.join(command)}\n")
            f.flush()
            rc = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
        if rc != 0:
            raise self.failed(trial, failure_line(log, start))
        after = self.frozen(trial)  # as the fit's reports left it
        # a DDP fit records pruning in optuna-integration's system attribute instead
        pruned = after.user_attrs.get("pruned") or (after.system_attrs.get("ddp_pl:pruned") and "pruned (DDP fit)")
        if pruned:
            trial.set_user_attr("reason", pruned)
            raise optuna.TrialPruned(pruned)
        for loss in LOSSES:
            value = last_metric(root, loss)
            if value is not None and not math.isfinite(value):
                raise self.failed(trial, f"{loss} is {value}: the fit diverged")
        values = []
        for metric in self.spec.metrics:
            value = figures[metric] if metric in STATIC else last_metric(root, metric)
            if value is None or not math.isfinite(value):
                raise self.failed(trial, f"{metric} is {value if value is not None else 'not in metrics.csv'}")
            values.append(float(value))
        return values[0] if len(values) == 1 else tuple(values)

    @staticmethod
    def frozen(trial):
        """The running trial as the storage has it (system attributes: a retry's history)."""
        return trial.study._storage.get_trial(trial._trial_id)

    @staticmethod
    def failed(trial, reason: str) -> Exception:
        trial.set_user_attr("reason", reason)
        return TrialFailed(reason)


class TrialFailed(RuntimeError):
    """A trial's fit failed (NaN loss, a bad option at that point of the space): the study goes on."""


def announce(spec: Spec):
    """One line per finished trial, printed by the worker that ran it."""
    def callback(study, trial) -> None:
        state = trial.state.name.lower()
        result = ", ".join(f"{m} {v:.4g}" for m, v in zip(spec.metrics, trial.values or []))
        reason = trial.user_attrs.get("reason")
        result = f"{result} ({reason})" if result and reason else result or reason or ""
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_start else 0
        params = " ".join(f"{k}={v}" for k, v in trial.params.items())
        print(f"[{study.study_name}] trial {trial.number} {state} in {seconds:.1f} s: {result} | {params}", flush=True)
    return callback


def stop_when_done(trials: int):
    def callback(study, trial) -> None:
        done, running = counted(study)
        if done + running >= trials:
            study.stop()
    return callback


def work(spec_path: str, trials: int | None, out: str, url: str, study_name: str, extra: list[str],
         worker: int = 0) -> int:
    """One worker: trials until the study has enough (several workers may share the study)."""
    spec = load_spec(spec_path, trials)
    # plan once now (imports, block registry), so that a trial's budget check takes milliseconds
    static_figures(trial_config(spec, first_point(spec)), {"macs"})
    study = open_study(spec, url, study_name, worker=worker)
    optuna.storages.fail_stale_trials(study)  # a dead worker's trial: failed, its retry enqueued
    done, running = counted(study)
    if done + running >= spec.trials:
        return 0
    study.optimize(Objective(spec, Path(out), url, study_name, extra), catch=(Exception,), gc_after_trial=False,
                   callbacks=[announce(spec), stop_when_done(spec.trials)])
    return 0


def divide_gpus(count: int) -> list[str | None]:
    """The GPUs each of ``count`` workers sees (CUDA_VISIBLE_DEVICES): the machine's GPUs dealt out, so
    that workers' trials do not share one; None where there is nothing to divide."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        gpus = [g for g in visible.split(",") if g.strip()]
    else:
        import torch  # device_count asks the driver; it does not start CUDA in this process

        gpus = [str(i) for i in range(torch.cuda.device_count())]
    if count < 2 or len(gpus) < 2:
        return [None] * count
    if len(gpus) < count:  # more workers than GPUs: they take turns on each
        return [gpus[i % len(gpus)] for i in range(count)]
    return [",".join(gpus[i::count]) for i in range(count)]


def worker_env(count: int, gpus: str | None) -> dict[str, str]:
    """The environment of one of ``count`` worker processes (and of its trials' fits): this package on the
    path, its GPUs, and, unless OMP_NUM_THREADS is set, the CPUs this process may use divided among the
    workers: each fit would otherwise take them all, and N workers would run N times the cores' threads."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpus
    if not os.environ.get("OMP_NUM_THREADS"):
        from ..training.threads import usable_cpus

        env["OMP_NUM_THREADS"] = str(max(1, usable_cpus()[0] // count))
    return env


def run_workers(count: int, settings: dict[str, Any]) -> int:
    """``count`` workers: one runs in this process; more each run in their own (``python -m pipeline.sweep.worker``)."""
    if count == 1:
        return work(**settings)
    workers = []
    for i, gpus in enumerate(divide_gpus(count)):
        workers.append(subprocess.Popen([sys.executable, "-m", "pipeline.sweep.worker",
                                         json.dumps({**settings, "worker": i})], env=worker_env(count, gpus)))
    try:
        codes = [w.wait() for w in workers]
    except KeyboardInterrupt:
        for w in workers:
            w.terminate()
        raise
    return max(codes, default=0)
