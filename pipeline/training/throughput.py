"""Samples/s and model FLOPs utilisation during training, with FLOPs from the plan.

Lightning's ``ThroughputMonitor`` does the timing, windowing and logging (``train/device/
samples_per_sec``, ``train/device/flops_per_sec``, ``train/device/mfu`` in the CSV/TensorBoard
logs), but needs FLOPs per batch from the user. We know them before training: the plan's MACs per
sample x 2 FLOPs per MAC x 3 for a training step (backward costs about twice the forward). MFU is
reported where Lightning knows the device's peak for the precision (CUDA GPUs, TPUs), not on CPUs.
The progress bar shows ``samples/s`` (and ``mfu``) once the window is full.
"""
from __future__ import annotations

import math
from typing import Any

from lightning.pytorch.callbacks import ThroughputMonitor

FLOPS_PER_MAC = 2
TRAIN_STEP_FACTOR = 3  # forward + backward (gradients for inputs and for weights: two forwards' worth)


def batch_size(batch: Any) -> int:
    """Samples in a batch: (images, labels) pairs, or a bare tensor."""
    first = batch[0] if isinstance(batch, (list, tuple)) else batch
    return int(first.shape[0])


def train_flops_per_sample(macs: int) -> int:
    return FLOPS_PER_MAC * TRAIN_STEP_FACTOR * macs


class _FlopsOf:
    """What ThroughputMonitor reads from the module: ``flops_per_batch`` (here, of this batch)."""

    def __init__(self, flops: int):
        self.flops_per_batch = flops


class Throughput(ThroughputMonitor):
    """ThroughputMonitor with FLOPs from the architecture's plan, and samples/s in the progress bar.

    Args:
        window_size: batches the rolling averages span (nothing is shown before the window is full).
    """

    def __init__(self, window_size: int = 20):
        super().__init__(batch_size_fn=batch_size, window_size=window_size)
        self.window_size = window_size
        self.flops_per_sample: dict[str, int] = {}
        self._unread_flops = 0

    def setup(self, trainer, pl_module, stage: str) -> None:
        # training reads the clock at the logging interval (see _reads_clock): the window, in readings,
        # still spans about window_size batches
        every = max(1, trainer.log_every_n_steps)
        self.kwargs["window_size"] = max(2, math.ceil(self.window_size / every))
        super().setup(trainer, pl_module, stage)
        macs = getattr(pl_module, "macs_per_sample", 0)  # ClassifierModule's, from its plan
        self.flops_per_sample = {"train": train_flops_per_sample(macs), "validate": FLOPS_PER_MAC * macs}

    @staticmethod
    def _reads_clock(trainer) -> bool:
        """Where a training batch reads the clock: where the figures are logged, and at an epoch's last batch
        (validation's time is taken out from there). On a GPU each reading synchronises the device, which
        Lightning's monitor does after every batch: a stall per step for a small net."""
        return trainer._logger_connector.should_update_logs or \
            trainer.fit_loop.epoch_loop.batch_progress.is_last_batch

    def _update(self, trainer, pl_module, batch, iter_num: int) -> None:
        # Lightning reads `pl_module.flops_per_batch`; ours depends on the batch, so hand it over directly
        kind = "train" if trainer.training else "validate"
        flops = self.flops_per_sample.get(kind, 0) * batch_size(batch)
        if kind == "train" and not self._reads_clock(trainer):
            stage = trainer.state.stage  # counted, timed at the next reading
            self._samples[stage] += batch_size(batch)
            self._batches[stage] += 1
            self._unread_flops += flops
            return
        flops, self._unread_flops = flops + self._unread_flops, 0
        super()._update(trainer, _FlopsOf(flops), batch, iter_num)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, *args: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, *args)
        throughput = self._throughputs.get(trainer.state.stage)
        if throughput is None or trainer.global_rank != 0 or trainer.progress_bar_callback is None \
                or not self._reads_clock(trainer):
            return  # the bar keeps the last figure shown
        metrics = throughput.compute()
        sep = throughput.separator
        for name, key in (("samples/s", f"device{sep}samples_per_sec"), ("mfu", f"device{sep}mfu")):
            if key in metrics:  # progress bar only: the logger gets them from ThroughputMonitor
                pl_module.log(name, float(metrics[key]), prog_bar=True, logger=False, on_step=True, on_epoch=False,
                              rank_zero_only=True)
