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


def test_training_reads_the_clock_at_the_logging_interval_not_every_batch(tmp_path):
    """Lightning's monitor reads the clock (and synchronises a GPU) after every batch; ours where it logs
    and at an epoch's last batch, with the figures unchanged in meaning: every batch is counted."""
    from lightning.pytorch.callbacks import ThroughputMonitor

    readings = []

    class Counting(Throughput):
        def _update(self, trainer, pl_module, batch, iter_num):
            before = self._batches.get(trainer.state.stage, 0)
            super()._update(trainer, pl_module, batch, iter_num)
            if trainer.training and len(self._throughputs[trainer.state.stage]._time) and \
                    self._throughputs[trainer.state.stage]._batches[-1] == before + 1:
                readings.append(trainer.global_step)

    import yaml

    arch = tmp_path / "tiny.yaml"
    arch.write_text(yaml.safe_dump(ARCH, sort_keys=False))
    model = ClassifierModule(str(arch), num_classes=4, input_shape=(3, 8, 8))
    data = SyntheticDataModule(num_classes=4, input_shape=(3, 8, 8), train_size=96, val_size=16, batch_size=8)
    monitor = Counting(window_size=8)
    trainer = L.Trainer(max_epochs=2, logger=L.pytorch.loggers.CSVLogger(tmp_path, name="", version=0),
                        log_every_n_steps=4, enable_checkpointing=False, limit_val_batches=0,
                        callbacks=[monitor], enable_model_summary=False, enable_progress_bar=False)
    assert isinstance(monitor, ThroughputMonitor)
    trainer.fit(model, data)
    assert trainer.global_step == 24 and readings == [4, 8, 12, 16, 20, 24], readings  # 6 readings for 24 batches
    from lightning.pytorch.trainer.states import RunningStage

    throughput = monitor._throughputs[RunningStage.TRAINING]
    assert throughput._batches[-1] == 24 and throughput._samples[-1] == 192  # every batch counted
    with open(tmp_path / "version_0" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/device/flops_per_sec")]
    plan = plan_model(str(arch), classes=4)
    assert rows  # a window of 8 batches is 2 readings: figures from step 8 on
    for r in rows:
        flops, samples = float(r["train/device/flops_per_sec"]), float(r["train/device/samples_per_sec"])
        assert flops / samples == pytest.approx(train_flops_per_sample(plan.macs), rel=1e-6)
