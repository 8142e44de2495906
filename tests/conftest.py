"""What the test modules share: the CLI run in this process, and the README's main job trained once.

Running ``python -m pipeline ...`` as a child process costs an interpreter and a fresh import of torch
and Lightning (5-10 s on the 2-core CI machine) per command. :func:`run_cli` calls the same entry point
in this process instead, with the same exit status and output; the few contracts only a separate
process can show (exactly one line on a real stderr, signals, DDP's launched ranks) keep a subprocess.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shlex
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch  # noqa: F401  (creates Lightning's log handlers now, on the real stderr)
import pytest
import torch

from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    """What ``subprocess.run(..., capture_output=True, text=True)`` returns, for an in-process run."""

    returncode: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _working_directory(path: Path):  # contextlib.chdir, which Python 3.10 lacks
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def _lightning_logs_to(stream: io.StringIO):
    """Lightning logs through handlers made at import time on the stderr of that moment; point them at
    ``stream`` for one command so that its log lines are captured like a child process's stderr."""
    handlers = [h for name in ("lightning.pytorch", "lightning.fabric") for h in logging.getLogger(name).handlers
                if type(h) is logging.StreamHandler]
    previous = [h.setStream(stream) for h in handlers]
    try:
        yield
    finally:
        for handler, old in zip(handlers, previous):
            handler.setStream(old)


def run_cli(*args: str, cwd: Path = ROOT) -> Result:
    """``python -m pipeline ARGS`` in this process, from ``cwd``, with its stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with _working_directory(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            _lightning_logs_to(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # --help and the parser's own exits
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    return Result(code, out.getvalue(), err.getvalue())


class TooSlow(BaseException):
    """Raised by :func:`time_limit`; a BaseException so that no `except Exception` in the code swallows it."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Fail a call that hangs (a bomb that is not defused) instead of hanging the test suite: a hang
    guard, not a speed test (it allows many times the normal time)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TooSlow(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def readme_args(command: str, root: Path) -> list[str]:
    """A README command's arguments (after ``python -m pipeline``), with ``runs/digits`` moved to ``root``."""
    return shlex.split(command.replace("runs/digits", str(root)))[3:]


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """The README's main job, ``fit --config lightning_config.yaml``, in full (12 epochs, about 98%), run once
    for the whole session. Its folder stands for ``runs/digits``; tests that add to it (resume) copy it."""
    root = tmp_path_factory.mktemp("runs") / "digits"
    result = run_cli("fit", "--config", "lightning_config.yaml", "--trainer.default_root_dir", str(root),
                     "--trainer.enable_progress_bar", "false")
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def pytest_configure(config):
    """In a pytest-xdist worker (pyproject's addopts run two), torch uses one thread: two workers of two
    threads each on a 2-core machine spend their time waiting on each other. Set in the environment too,
    so that the processes a test starts (DDP ranks, CLI runs) compute exactly like this one."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)
    else:
        # the controller (or a run without workers), before any worker starts (they inherit it): torch.compile's
        # cache in a folder of this session, removed at its end (inductor's default /tmp one keeps 150 MB)
        if INDUCTOR not in os.environ:
            os.environ[INDUCTOR] = tempfile.mkdtemp(prefix="pytest-inductor-")
            os.environ[OWN_INDUCTOR] = "1"
        if config.pluginmanager.hasplugin("xdist") and config.getoption("numprocesses", None):
            # where the workers write the groups
            os.environ[GROUPS] = str(Path(tempfile.mkdtemp(prefix="pytest-groups-")) / "groups.json")


# Tests that share an expensive fixture run in one xdist worker, so that it is built once: otherwise
# each worker that meets one of them trains the main job or launches the DDP evaluation pair again
# (about 90 s of the suite). A worker writes which tests share what (it collects; the controller only
# sees node ids) and the controller's scheduler, a load-scope one, keeps each group together and
# spreads every other test singly. Node ids stay as they are (--lf and pasted ids keep working).
SESSION_SHARED = ("digits_run",)  # one group across modules
MODULE_SHARED = ("run", "ddp_runs", "optimized")  # one group per module that defines them
GROUPS = "PIPELINE_TEST_GROUPS"  # environment variable: the file that carries the groups


def _group(item) -> str | None:
    names = getattr(item, "fixturenames", ())
    for name in SESSION_SHARED:
        if name in names:
            return name
    if any(name in names for name in MODULE_SHARED):
        return f"{item.path.name}:shared"
    return None


def pytest_unconfigure(config):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    path = os.environ.get(GROUPS)
    if path:  # the controller made it
        shutil.rmtree(Path(path).parent, ignore_errors=True)
    if os.environ.pop(OWN_INDUCTOR, None):
        shutil.rmtree(os.environ.pop(INDUCTOR), ignore_errors=True)


INDUCTOR, OWN_INDUCTOR = "TORCHINDUCTOR_CACHE_DIR", "PIPELINE_TEST_OWNS_INDUCTOR_CACHE"


def _repository_entries() -> set[str]:
    return {p.name for p in ROOT.iterdir()}


@pytest.fixture(scope="session", autouse=True)
def repository_untouched():
    """Tests write under pytest's temporary folders only: a test that leaves a file or folder at the top
    of the repository (a checkpoints/ of a Trainer without a root, a README command's output) fails the
    session here."""
    before = _repository_entries()
    yield
    added = sorted(_repository_entries() - before - {".pytest_cache", ".hypothesis", "__pycache__"})
    assert not added, f"tests left these in the repository: {added}"


@pytest.hookimpl(trylast=True)  # after deselection: the ids the scheduler will get
def pytest_collection_modifyitems(config, items):
    path = os.environ.get(GROUPS)
    if path and getattr(config, "workerinput", {}).get("workerid") == "gw0":  # every worker collects the same
        groups = {item.nodeid: g for item in items if (g := _group(item))}
        Path(path + ".tmp").write_text(json.dumps(groups))
        os.replace(path + ".tmp", path)  # whole before gw0 reports its collection


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "load":  # xdist's default with -n; another --dist asked for is kept
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # scheduling starts once every worker has reported its collection
                path = os.environ.get(GROUPS)
                self.groups = json.loads(Path(path).read_text()) if path and os.path.exists(path) else {}
            return self.groups.get(nodeid, nodeid)

    return SharedFixtureScheduling(config, log)
