"""CPU threads per process: the CPUs the process may use, shared among this machine's processes."""
from __future__ import annotations

import os

import pytest

from pipeline.training.threads import choose_threads, usable_cpus


@pytest.fixture
def cpus(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)

    def set_affinity(count: int) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(count)))
    return set_affinity


def test_threads_follow_the_affinity_divided_among_local_processes(cpus):
    cpus(8)
    assert choose_threads(1)[0] == 8
    assert choose_threads(2)[0] == 4  # two DDP processes on one machine
    assert choose_threads(16)[0] == 1  # never 0
    assert "8 usable (CPU affinity) / 2 process(es)" in choose_threads(2)[1]


def test_slurm_allocation_caps_the_threads(cpus, monkeypatch):
    cpus(64)  # a whole node is visible, the job was given 8 CPUs per task
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    assert usable_cpus() == (8, "SLURM_CPUS_PER_TASK")
    assert choose_threads(1)[0] == 8


def test_omp_num_threads_overrides(cpus, monkeypatch):
    cpus(8)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads(2) == (3, "OMP_NUM_THREADS=3")


def test_fit_says_its_thread_choice_in_one_line(tmp_path):
    from conftest import run_cli

    proc = run_cli("fit", "--config", "lightning_config.yaml", "--trainer.fast_dev_run", "true",
                   "--trainer.default_root_dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sum(line.startswith("CPU threads: ") for line in proc.stderr.splitlines()) == 1
