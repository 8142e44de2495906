"""A callback the streaming DDP test puts into a `fit` through its config (the ranks are processes of
their own): each rank writes which training samples it read, per epoch."""
from __future__ import annotations

import json
from pathlib import Path

import lightning as L


class SamplesRead(L.Callback):
    """``<folder>/rank<R>.json``: {epoch: [sample positions]} of this rank (loader num_workers 0)."""

    def __init__(self, folder: str):
        self.folder, self.seen = Path(folder), {}

    def on_train_start(self, trainer, pl_module) -> None:
        dataset = trainer.train_dataloader.dataset
        read = type(dataset).__getitem__

        def recorded(index):  # LitData calls self.__getitem__(ChunkedIndex) for every sample it yields
            self.seen.setdefault(trainer.current_epoch, []).append(int(index.index))
            return read(dataset, index)

        dataset.__getitem__ = recorded

    def on_train_end(self, trainer, pl_module) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.seen))
