"""Callbacks that the scale-out tests put into a `fit` through its config: a beacon that says where a
run is (and can hold it there), and a rank that dies."""
from __future__ import annotations

import os
import time
from pathlib import Path

import lightning as L


class Beacon(L.Callback):
    """After optimizer step ``step``, each rank writes ``<folder>/rank<R>`` with its pid; with ``hold``
    it then sleeps there, so that a test can kill or signal it at a known point."""

    def __init__(self, folder: str, step: int, hold: float = 0.0):
        self.folder, self.step, self.hold = Path(folder), step, hold

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f".rank{trainer.global_rank}"
            tmp.write_text(str(os.getpid()))
            tmp.rename(self.folder / f"rank{trainer.global_rank}")
            time.sleep(self.hold)


class DieAt(L.Callback):
    """Rank ``rank`` ends its process abruptly (no cleanup, like a crash or an OOM kill) at ``step``,
    or with ``hang`` stops there without dying (a deadlock, a stuck file system)."""

    def __init__(self, step: int, rank: int, status: int = 7, hang: bool = False):
        self.step, self.rank, self.status, self.hang = step, rank, status, hang

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step and trainer.global_rank == self.rank:
            if self.hang:
                time.sleep(3600)
            os._exit(self.status)
