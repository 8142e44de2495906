"""Random but learnable images, for tests and throughput benchmarks."""
from __future__ import annotations

import numpy as np

from .base import ImageDataModule


class SyntheticDataModule(ImageDataModule):
    """Seeded uint8 images whose mean brightness per channel depends on the class, so a net can learn them;
    with a (C, L) shape, float32 1-D signals whose mean level depends on the class.

    Args:
        num_classes: number of classes.
        input_shape: (C, H, W) of the images, or (C, L) of 1-D signals.
        train_size: training images.
        val_size: validation (and test) images.
        batch_size: samples per batch.
        num_workers: loader worker processes.
        seed: seed of the data and the shuffling order.
    """

    def __init__(self, num_classes: int = 10, input_shape: tuple[int, ...] = (3, 32, 32), train_size: int = 256,
                 val_size: int = 64, batch_size: int = 32, num_workers: int = 0, seed: int = 0):
        super().__init__(batch_size, num_workers, seed=seed)
        self._num_classes, self._input_shape = num_classes, tuple(input_shape)
        self.train_size, self.val_size = train_size, val_size
        # the shape as a list, as ClassifierModule stores it: Lightning refuses to merge hparams that
        # differ between module and data, and a tuple != a list
        self.save_hyperparameters({"num_classes": num_classes, "input_shape": list(self._input_shape),
                                   "train_size": train_size, "val_size": val_size, "batch_size": batch_size,
                                   "num_workers": num_workers, "seed": seed})

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._input_shape  # type: ignore[return-value]

    def make(self, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        if len(self._input_shape) == 2:  # 1-D signals: standardised floats, a level per class
            labels = rng.integers(0, self._num_classes, count)
            level = (labels[:, None, None] + 0.5) * (2.0 / self._num_classes) - 1.0
            return rng.normal(level, 0.5, (count, *self._input_shape)).astype(np.float32), labels
        c, h, w = self._input_shape
        labels = rng.integers(0, self._num_classes, count)
        level = (labels[:, None, None, None] + 0.5) * (200 / self._num_classes)
        images = np.clip(rng.normal(level, 40, (count, h, w, c)), 0, 255).astype(np.uint8)
        return images, labels

    def dataset(self, split: str):
        if len(self._input_shape) == 2:  # windows and augmentation of 1-D signals (datamodules/signals.py)
            from .signals import signal_dataset

            return signal_dataset(self, split)
        return super().dataset(split)

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            self.splits = {"train": self.make(self.train_size, self.seed), "val": self.make(self.val_size, self.seed + 1)}
