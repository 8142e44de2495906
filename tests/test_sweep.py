"""Sweeps on Optuna: workers sharing one study, budgets before weights, failing trials, best.yaml, bad specs.

Each trial is a real `fit` child process (several seconds of start-up on the CI machine), so the
sweeps here are a few trials of a tiny net for two steps.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from conftest import ROOT, run_cli

SWEEP = "python -m pipeline sweep experiments/sweeps/digits_width.yaml --workers 2"
BEST = "python -m pipeline fit --config runs/sweeps/digits_width/best.yaml"
TINY = "input: [1, 8, 8]\nvars: {classes: 10, width: 4}\nnodes:\n  stem: {block: conv, out: width}\n" \
       "  pool: global_pool\n  fc: {block: linear, out: classes}\n"
QUICK = {"trainer.max_epochs": 2, "trainer.limit_train_batches": 2, "trainer.limit_val_batches": 1}


def write_spec(folder: Path, **keys) -> Path:
    (folder / "tiny.yaml").write_text(TINY)
    spec = {"config": "experiments/base.yaml", "metric": "val/acc", "direction": "maximize", "sampler": "grid",
            "space": {"model.vars.width": [4, 64], "model.optimizer.lr": [0.1, 1.0e30]},
            "fixed": {"model.arch": str(folder / "tiny.yaml"), **QUICK}, "budget": {"params": 500}, **keys}
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def trials(out: Path, name: str = "spec") -> list:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}").get_trials()


@pytest.fixture(scope="module")  # named like the other modules' shared runs: one xdist worker runs them all
def run(tmp_path_factory) -> Path:
    """A 2x2 grid run by two workers on one SQLite study: width 64 is over the budget, lr 1e30 diverges."""
    folder = tmp_path_factory.mktemp("sweep")
    result = run_cli("sweep", str(write_spec(folder)), "--out", str(folder / "out"), "--workers", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "out"


def test_two_workers_cover_the_grid_once(run):
    done = trials(run)
    points = sorted((t.params["model.vars.width"], t.params["model.optimizer.lr"]) for t in done)
    assert points == [(4, 0.1), (4, 1e30), (64, 0.1), (64, 1e30)]  # every point exactly once
    assert sorted(t.system_attrs["grid_id"] for t in done) == [0, 1, 2, 3]


def test_budget_prunes_before_any_weight(run):
    over = [t for t in trials(run) if t.params["model.vars.width"] == 64]
    for t in over:
        assert t.state == optuna.trial.TrialState.PRUNED
        assert t.user_attrs["reason"].startswith("over budget (params 1,354 > 500)"), t.user_attrs
        assert (t.datetime_complete - t.datetime_start).total_seconds() < 1.0
        assert not (run / f"trial_{t.number:04d}").exists()  # no fit was started: no config, no logs


def test_a_diverging_trial_fails_with_its_reason_and_the_study_goes_on(run):
    by_lr = {t.params["model.optimizer.lr"]: t for t in trials(run) if t.params["model.vars.width"] == 4}
    failed, complete = by_lr[1e30], by_lr[0.1]
    assert failed.state == optuna.trial.TrialState.FAIL
    assert "nan" in failed.user_attrs["reason"] and "\n" not in failed.user_attrs["reason"]
    assert complete.state == optuna.trial.TrialState.COMPLETE and 0 <= complete.value <= 1
    assert sorted(complete.intermediate_values) == [0, 1]  # val/acc reported from inside the fit, per epoch


def test_results_table_plots_and_best_yaml(run):
    rows = (run / "trials.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert header[:3] == ["number", "state", "val/acc"] and len(rows) == 5
    assert {"model.vars.width", "model.optimizer.lr", "macs", "params", "folder", "reason"} <= set(header)
    assert "| complete |" in (run / "sweep.md").read_text()
    assert (run / "history.png").read_bytes()[:4] == b"\x89PNG"
    best = yaml.safe_load((run / "best.yaml").read_text())
    assert best["model"]["vars"] == {"width": 4} and best["model"]["optimizer"]["lr"] == 0.1
    assert best["trainer"]["default_root_dir"] == str(run / "best")
    assert "SweepPruning" not in (run / "best.yaml").read_text()


def test_readme_sweep_and_its_best_yaml(tmp_path):
    """The README's commands, on a quarter of one epoch: one trial, then fit --config best.yaml."""
    out = tmp_path / "runs/sweeps/digits_width"
    args = shlex.split(SWEEP)[3:] + ["--out", str(out), "--workers", "1", "--trials", "1",
                                     "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                                     "--trainer.limit_val_batches", "1"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trial 0 complete" in result.stdout and "best.yaml" in result.stdout
    result = run_cli(*shlex.split(BEST.replace("runs/", f"{tmp_path}/runs/"))[3:])
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((out / "best").glob("version_0/metrics.csv"))


def test_readme_spec_is_the_shipped_file():
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("## Sweeps"):]
    block = block[block.index("```yaml\n") + 8:]
    shown = yaml.safe_load(block[:block.index("```")])
    assert shown == yaml.safe_load((ROOT / "experiments/sweeps/digits_width.yaml").read_text())


def test_budget_figures_are_those_of_summary_json():
    from pipeline.sweep.budget import static_figures

    config = {"model": {"arch": "architectures/lenet5.yaml", "optimizer": {"name": "adamw"}},
              "data": {"class_path": "datamodules.DigitsDataModule", "init_args": {"batch_size": 16}}}
    figures = static_figures(config, {"macs", "params", "train_memory"})
    result = run_cli("summary", "architectures/lenet5.yaml", "--json", "--batch", "16", "--optimizer", "adamw")
    shown = json.loads(result.stdout)
    assert figures == {"macs": shown["macs"], "params": shown["params"], "train_memory": shown["train_memory_bytes"]}


BAD = [
    ({"samplr": "tpe"}, "samplr: unknown key (did you mean 'sampler'?)"),
    ({"space": {"model.vars.width": []}}, "space.model.vars.width: empty choice list"),
    ({"space": {"model.optimizer.lr": {"float": [0.5, 0.1]}}}, "inverted range: low 0.5 is above high 0.1"),
    ({"space": {"model.optimizer.lr": {"float": [0.1, 0.1]}}}, "empty range"),
    ({"sampler": "cmaes2"}, "unknown sampler 'cmaes2'; samplers: tpe, random, grid, nsga2"),
    ({"budget": {"flops": 1e6}}, "budget.flops: unknown budget; budgets: macs, params, train_memory"),
    ({"space": {"model.optimzer.lr": [0.1, 0.2]}}, "fit options: Group 'model' does not accept option 'optimzer.lr'"),
    ({"space": {"model.vars.widht": [4, 8]}}, "cannot override variable 'widht'"),
    ({"space": {"model.optimizer.lr": ["1e-3", 0.1]}}, "'1e-3' is text to PyYAML (YAML 1.1) but a number to YAML 1.2"),
]


@pytest.mark.parametrize("keys, words", BAD, ids=[w.split(":")[0][:20] for _, w in BAD])
def test_bad_specs_exit_2_with_one_line_before_any_trial(keys, words, tmp_path):
    result = run_cli("sweep", str(write_spec(tmp_path, **keys)), "--out", str(tmp_path / "out"))
    err = result.stderr.strip()
    assert result.returncode == 2 and len(err.splitlines()) == 1 and words in err, err
    assert not (tmp_path / "out").exists()


def test_workers_0_creates_the_study_and_runs_no_trial(tmp_path):
    """What a cluster's first step may do: the spec checked and the study made, for workers to join."""
    result = run_cli("sweep", str(write_spec(tmp_path)), "--out", str(tmp_path / "out"), "--workers", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "4 trials (grid, pruner median, budget params 500)" in result.stdout and trials(tmp_path / "out") == []


def test_storage_that_cannot_be_opened_exits_2(tmp_path):
    (tmp_path / "file").write_text("")
    result = run_cli("sweep", str(write_spec(tmp_path)), "--storage", f"sqlite:///{tmp_path}/file/study.db")
    err = result.stderr.strip()
    assert result.returncode == 2 and len(err.splitlines()) == 1 and "cannot open it" in err, err


@pytest.mark.slow
def test_a_killed_worker_is_retried_and_the_grid_done_once(tmp_path):
    """SIGKILL the worker mid-trial; the command run again fails the dead trial (its heartbeat stopped),
    retries it from its last.ckpt in the same folder, and walks the rest of the grid."""
    spec = write_spec(tmp_path, space={"model.optimizer.lr": [0.1, 0.05]}, budget={}, heartbeat=1,
                      fixed={"model.arch": str(tmp_path / "tiny.yaml"), "trainer.max_steps": 400,
                             "trainer.limit_val_batches": 1, "trainer.enable_checkpointing": True,
                             "fault_tolerance.every_n_steps": 5})
    command = [sys.executable, "-m", "pipeline", "sweep", str(spec), "--out", str(tmp_path / "out")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "out").glob("trial_0000/**/last.ckpt")) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the worker and its fit
    first.wait()
    time.sleep(2.5)  # past the grace period (twice the heartbeat)
    result = run_cli(*command[3:], "--trainer.max_steps", "30")  # again, in this process (saves a start-up)
    assert result.returncode == 0, result.stderr[-3000:]
    done = trials(tmp_path / "out")
    states = [(t.number, t.state.name, t.params["model.optimizer.lr"]) for t in done]
    assert states[0][:2] == (0, "FAIL") and len(done) == 3, states
    complete = sorted(t.params["model.optimizer.lr"] for t in done if t.state.name == "COMPLETE")
    assert complete == [0.05, 0.1], states  # each grid point done once
    retry = next(t for t in done if t.system_attrs.get("failed_trial") == 0)
    assert retry.user_attrs.get("resumed") and retry.user_attrs["folder"].endswith("trial_0000")
    assert "Restored all states from the checkpoint" in (tmp_path / "out/trial_0000/fit.log").read_text()


def test_workers_divide_the_cpus_among_their_fits_unless_omp_num_threads_is_set(monkeypatch):
    """Each trial's fit takes its threads from OMP_NUM_THREADS (training/threads.py): N workers on a machine
    share its CPUs instead of each fit taking them all."""
    import os

    from pipeline.sweep.engine import worker_env
    from pipeline.training.threads import usable_cpus

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cpus = usable_cpus()[0]
    assert worker_env(2, None)["OMP_NUM_THREADS"] == str(max(1, cpus // 2))
    assert worker_env(4 * cpus, None)["OMP_NUM_THREADS"] == "1"
    assert worker_env(2, "1")["CUDA_VISIBLE_DEVICES"] == "1" and os.getcwd() in worker_env(2, None)["PYTHONPATH"]
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert worker_env(2, None)["OMP_NUM_THREADS"] == "3"  # the user's choice wins
