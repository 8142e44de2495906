"""Class balancing for imbalanced folders: draw training samples with probability 1 / class size."""
from __future__ import annotations

import itertools
from typing import Iterator

import torch
from torch.utils.data import Dataset

from .sampling import ResumableSampler


class BalancedSampler(ResumableSampler):
    """Each epoch draws as many samples as the split holds, with replacement, every class equally
    likely; seeded by (seed, epoch) and split across ranks and resumable like :class:`ResumableSampler`."""

    def __init__(self, dataset: Dataset, labels: list[int], seed: int = 0):
        super().__init__(dataset, seed)
        counts = torch.bincount(torch.tensor(labels))
        self.weights = 1.0 / counts[torch.tensor(labels)].double()

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        start, self.start = self.start, 0
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        drawn = torch.multinomial(self.weights, self.total_size, replacement=True, generator=generator).tolist()
        for index in itertools.islice(drawn[self.rank:self.total_size:self.num_replicas], start, None):
            yield index, self.seed, self.epoch
