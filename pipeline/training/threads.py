"""CPU threads per process: the CPUs this process may use, shared among the processes of this machine.

PyTorch starts as many intra-op threads as the machine has cores, whatever the process may use: under
SLURM (``--cpus-per-task 8`` on a 64-core node) or with several DDP processes on one machine, each
process then runs more threads than it has CPUs, and they wait on each other (docs/BENCHMARKS.md). The
choice is said in one line; ``OMP_NUM_THREADS`` set by the user (or the launcher) wins.
"""
from __future__ import annotations

import os
import sys

import torch
from lightning.pytorch import Callback


def usable_cpus() -> tuple[int, str]:
    """How many CPUs this process may run on, and where that figure comes from."""
    try:
        count, source = len(os.sched_getaffinity(0)), "CPU affinity"
    except (AttributeError, OSError):  # not on Linux
        count, source = os.cpu_count() or 1, "CPUs"
    slurm = os.environ.get("SLURM_CPUS_PER_TASK")
    if slurm and slurm.isdigit() and 0 < int(slurm) < count:
        count, source = int(slurm), "SLURM_CPUS_PER_TASK"
    return count, source


def choose_threads(local_processes: int) -> tuple[int, str]:
    """Threads for each of ``local_processes`` processes on this machine, and the reason in words."""
    given = os.environ.get("OMP_NUM_THREADS", "")
    if given.isdigit() and int(given) > 0:
        return int(given), f"OMP_NUM_THREADS={given}"
    cpus, source = usable_cpus()
    threads = max(1, cpus // max(1, local_processes))
    return threads, f"{cpus} usable ({source}) / {local_processes} process(es) on this machine; " \
                    "OMP_NUM_THREADS overrides"


class CpuThreads(Callback):
    """Sets torch's intra-op threads in every process when the Trainer starts; rank zero says so."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", 0)) or max(1, trainer.num_devices)
        threads, why = choose_threads(local)
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        if trainer.is_global_zero:
            print(f"CPU threads: {threads} per process ({why})", file=sys.stderr)
