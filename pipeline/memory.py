"""Refuse, before anything is allocated, a run whose tensors cannot fit in the machine's memory.

An input of 10^6 x 10^6, an `upsample` by 20000 or the digits at image_size 100000 would otherwise
end minutes later in an out-of-memory traceback from cv2 or torch (or the kernel's OOM killer). The
plan knows every node's output shape, so a lower bound is cheap: the batch's input and every node's
output (what a training step keeps for backward, at least), plus weights and their gradients. Only
when that lower bound exceeds the memory available is the run refused; `--memory_check false`
skips the check.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from .user_errors import UsageError

GB = 1e9


def available_bytes(device: torch.device) -> tuple[int, str]:
    """Bytes this process can still allocate on ``device``, and where the figure comes from."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free, f"free on {torch.cuda.get_device_name(device)}"
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append((int(line.split()[1]) * 1024, "MemAvailable"))
    except OSError:
        pass
    try:  # a container's or a SLURM job's limit (cgroup v2)
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit.isdigit():
            found.append((int(limit) - used, "the cgroup's memory.max"))
    except (OSError, ValueError):
        pass
    if not found:
        pages, size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        found.append((pages * size, "free pages"))
    return min(found)


def lower_bound(plan, batch: int, element: int, training: bool) -> tuple[int, str, int]:
    """(bytes, the largest node, its bytes) that a step needs at least: input and node outputs of the
    batch (training keeps them all for backward; evaluation needs the largest two at a time), plus the
    weights (and in training their gradients)."""
    outputs = [(node.name, batch * math.prod(node.out_shape) * element) for node in plan.nodes]
    name, largest = max(outputs, key=lambda item: item[1])
    data = batch * math.prod(plan.in_shape) * element
    weights = plan.params * 4 * (2 if training else 1)
    activations = sum(b for _, b in outputs) if training else sum(sorted(b for _, b in outputs)[-2:])
    return data + activations + weights, name, largest


def check_memory(plan, batch: int, device: torch.device, precision: str, training: bool, arch: str,
                 override: str = "--memory_check false") -> None:
    element = 2 if str(precision).startswith(("16", "bf16")) else 4
    need, node, largest = lower_bound(plan, batch, element, training)
    have, source = available_bytes(device)
    if need > have:
        shape = "x".join(map(str, next(n.out_shape for n in plan.nodes if n.name == node)))
        raise UsageError(f"{arch} at batch {batch} needs at least {need / GB:,.1f} GB "
                         f"({'a training step' if training else 'evaluation'}; node '{node}' alone outputs {shape} "
                         f"per sample, {largest / GB:,.1f} GB for the batch), more than the {have / GB:,.1f} GB "
                         f"available ({source}): lower the batch size or the input size"
                         + (f", or pass {override} to try anyway" if override else ""))

