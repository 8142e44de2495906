"""Throughput (samples/s, FLOPs/s, MFU) during training, with FLOPs from the plan (training/throughput.py)."""
from __future__ import annotations

import csv

import lightning as L
import pytest

from datamodules import SyntheticDataModule
from pipeline import plan_model
from pipeline.training.cli import PipelineCLI  # noqa: F401 - the CLI adds the callback to every fit
from pipeline.training.module import ClassifierModule
from pipeline.training.throughput import Throughput, train_flops_per_sample

ARCH = {"input": [3, 8, 8], "vars": {"classes": 4},
        "nodes": {"c": {"block": "conv", "out": 8}, "p": "global_pool", "fc": {"block": "linear", "out": "classes"}}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Eight training steps of a tiny net with a window of 3 batches; the CSV log and the trainer."""
    root = tmp_path_factory.mktemp("throughput")
    arch = root / "tiny.yaml"
    import yaml

    arch.write_text(yaml.safe_dump(ARCH, sort_keys=False))
    model = ClassifierModule(str(arch), num_classes=4, input_shape=(3, 8, 8))
    data = SyntheticDataModule(num_classes=4, input_shape=(3, 8, 8), train_size=64, val_size=16, batch_size=8)
    trainer = L.Trainer(max_steps=8, logger=L.pytorch.loggers.CSVLogger(root, name="", version=0),
                        log_every_n_steps=1, enable_checkpointing=False, limit_val_batches=0,
                        callbacks=[Throughput(window_size=3)], enable_model_summary=False)
    trainer.fit(model, data)
    with open(root / "version_0" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return trainer, rows, plan_model(str(arch), classes=4)


def test_flops_come_from_the_plan(run):
    trainer, rows, plan = run
    rows = [r for r in rows if r.get("train/device/flops_per_sec")]
    assert rows, "ThroughputMonitor logged no FLOPs"
    for r in rows:
        flops, samples = float(r["train/device/flops_per_sec"]), float(r["train/device/samples_per_sec"])
        # equal batches: FLOPs/s over samples/s is the plan's training FLOPs per sample
        assert flops / samples == pytest.approx(train_flops_per_sample(plan.macs), rel=1e-6)
    assert train_flops_per_sample(plan.macs) == 6 * plan.macs > 0


def test_samples_per_second_in_the_progress_bar_not_on_cpu_mfu(run):
    trainer, rows, _ = run
    assert trainer.progress_bar_metrics["samples/s"] > 0
    assert "mfu" not in trainer.progress_bar_metrics  # no known peak FLOPs for a CPU
    assert not any(r.get("samples/s") for r in rows)  # the logs have ThroughputMonitor's names instead


def test_fit_adds_the_callback_unless_configured():
    from pipeline.training.cli import with_throughput

    assert sum(isinstance(c, Throughput) for c in with_throughput("fit", [])) == 1
    own = Throughput(window_size=5)
    assert with_throughput("fit", [own]) == [own]  # the user's own monitor is kept, not doubled
    assert with_throughput("validate", []) == []
