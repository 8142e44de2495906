"""Run folders: every `fit` writes into its own ``ROOT/version_N/`` (config, logs and checkpoints).

Two runs under one ``trainer.default_root_dir`` never share a checkpoint folder, so a second run
cannot overwrite the first one's ``last.ckpt``. ``--ckpt_path last`` (and ``best``) mean the newest
run's: the run whose ``last.ckpt`` was written most recently. Resuming continues that run in its own
folder: the same checkpoints, and its metrics.csv kept up to the resumed step (Lightning's CSV logger
would delete it).
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from ..user_errors import UsageError

RUN = re.compile(r"version_(\d+)")
LAST = "last.ckpt"


def run_folders(root: Path) -> list[Path]:
    """The run folders under ``root``, oldest version first."""
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if p.is_dir() and RUN.fullmatch(p.name)]
    return sorted(runs, key=lambda p: int(RUN.fullmatch(p.name).group(1)))


def newest_last(root: Path) -> Path | None:
    """The most recently written ``version_N/checkpoints/last.ckpt`` under ``root``, if any."""
    found = [p for run in run_folders(root) if (p := run / "checkpoints" / LAST).is_file()]
    return max(found, key=lambda p: (p.stat().st_mtime_ns, int(RUN.fullmatch(p.parent.parent.name).group(1))),
               default=None)


def best_of(last: Path) -> Path | None:
    """The best checkpoint that the run of ``last`` recorded (its monitored ModelCheckpoint's state)."""
    from ..checkpoints import load_file

    states = (load_file(last, mmap=True).get("callbacks") or {})
    for key, state in states.items():
        if key.startswith("ModelCheckpoint") and isinstance(state, dict) and state.get("best_model_path"):
            path = Path(state["best_model_path"])
            if path.is_file():
                return path
    return None


def resolve(ckpt_path: str | None, root: Path, required: bool = False) -> str | None:
    """``last``/``best`` -> the newest run's checkpoint under ``root``; anything else unchanged. With no
    run yet, ``fit`` keeps ``last`` (Lightning says so and starts from scratch: a first SLURM job);
    evaluation (``required``) would test untrained weights, so that is an error."""
    if ckpt_path not in ("last", "best"):
        return ckpt_path
    last = newest_last(root)
    if last is None:
        if required:
            raise UsageError(f"--ckpt_path {ckpt_path}: no run under {root} has a checkpoints/{LAST} yet; "
                             "train one with fit, or give a checkpoint file")
        return ckpt_path
    if ckpt_path == "best":
        best = best_of(last)
        return str(best) if best else ckpt_path
    return str(last)


def version_of(ckpt_path: str | None, root: Path) -> int | None:
    """The run (version number) under ``root`` whose checkpoint ``ckpt_path`` is, else None."""
    if not ckpt_path:
        return None
    path = Path(ckpt_path)
    run = path.parent.parent
    match = RUN.fullmatch(run.name)
    if path.parent.name != "checkpoints" or not match:
        return None
    try:
        same_root = run.parent.resolve() == root.resolve()
    except OSError:
        return None
    return int(match.group(1)) if same_root else None


class _ResumedWriter(ExperimentWriter):
    """Lightning's CSV writer, but an existing metrics.csv is kept up to the resumed step instead of
    being deleted: the rows from the checkpoint's step on are the ones the resumed run logs again."""

    def __init__(self, log_dir: str, resume_step: int) -> None:
        self.resume_step = resume_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            keys, rows = list(reader.fieldnames or []), list(reader)
        # a row's step is the number of optimizer steps before it: the resumed run logs step S on
        rows = [r for r in rows if not r.get("step") or int(float(r["step"])) < self.resume_step]
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
        self.metrics_keys = keys  # later rows append under the same header


class RunLogger(CSVLogger):
    """CSVLogger whose version can continue a resumed run (``resume_step``: the checkpoint's step)."""

    def __init__(self, *args, resume_step: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None and self._resume_step is not None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ResumedWriter(self.log_dir, self._resume_step)
        return super().experiment
