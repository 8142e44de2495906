"""benchmarks/gpu_check.sh: without a GPU, a CPU dry run of the same code path that exits 0."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402


@pytest.mark.parametrize("compiled", [False, True])
def test_the_timed_training_loop_runs_eager_and_compiled(compiled):
    from pipeline import build_model

    model = build_model({"input": [3, 8, 8], "nodes": {"c": {"block": "conv", "out": 4}, "p": "global_pool",
                                                       "fc": {"block": "linear", "out": 5}}})
    before = [p.detach().clone() for p in model.parameters()]
    speed = gpu_check.images_per_second(model, (3, 8, 8), 2, "cpu", compiled, warmup=1, steps=1, classes=5)
    assert speed > 0
    assert any(not torch.equal(a, b.detach().cpu()) for a, b in zip(before, model.parameters()))  # it trained


@pytest.mark.slow
def test_script_without_gpu_says_so_and_passes_a_dry_run(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TMPDIR": str(tmp_path), "PYTHON": sys.executable}
    # the compiled loop is checked above on a tiny net, and the default run's fast_dev_run by
    # tests/test_training.py; here the script end to end without them (on a CPU they add half a minute
    # and show nothing more)
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--no-compile", "--no-default-run"],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert out.startswith("No CUDA GPU on this machine: CPU dry run")
    assert "| resnet50 | eager |" in out and "| resnet50 | compiled |" not in out
    assert "plan estimate" in out and "default run" not in out
    assert out.rstrip().endswith("run this script on a machine with a GPU for the real table.")
