"""The training loader's order: seeded, split across ranks, and resumable in the middle of an epoch.

A run killed after batch k of an epoch and resumed from its checkpoint must see the batches k+1, ...
of the same epoch, augmented the same way, as the uninterrupted run. Lightning saves and restores a
loader's ``state_dict`` (it calls such loaders "stateful") but a plain DataLoader restarts its epoch,
and albumentations draws from its own generators, seeded from the OS. Here every training sample
carries its own augmentation seed (data seed, epoch, index), so what a sample looks like depends on
neither the worker that loads it nor how many samples came before it.
"""
from __future__ import annotations

import hashlib
import itertools
import random
import weakref
from typing import Any, Iterator

import albumentations as A
import numpy as np
import torch.distributed as dist
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset, DistributedSampler


# One generator pair per process, re-seeded for every training sample: making new ones (numpy's
# default_rng hashes its seed through a SeedSequence) cost 40 us a sample, 2.5 ms a batch of 64.
_NUMPY = np.random.Generator(np.random.PCG64())
_PYTHON = random.Random()
# albumentations transforms that draw nothing at random (at p=1): a pipeline of these needs no seed
_FIXED = tuple(getattr(A, name) for name in ("Resize", "CenterCrop", "SmallestMaxSize", "LongestMaxSize",
                                               "PadIfNeeded", "Normalize", "ToFloat", "FromFloat", "ToGray"))


def draws_at_random(transform: Any) -> bool:
    """Whether a transform (an albumentations Compose, or any callable) may draw random numbers."""
    parts = getattr(transform, "transforms", None)
    if getattr(transform, "p", 1.0) < 1.0:
        return True
    if parts is None:
        return not isinstance(transform, _FIXED)
    # Compose and Sequential apply all their parts; OneOf, SomeOf, RandomOrder... choose among them
    return not isinstance(transform, (A.Compose, A.Sequential)) or any(draws_at_random(t) for t in parts)


_DRAWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # draws_at_random, per pipeline object


def _draws(transform: Any) -> bool:
    try:
        return _DRAWS[transform]
    except KeyError:
        _DRAWS[transform] = found = draws_at_random(transform)
        return found
    except TypeError:  # not weakly referable
        return draws_at_random(transform)


def seed_sample(index: int | tuple[int, int, int], transform: Any) -> int:
    """Datasets call this first: a training index comes as ``(index, seed, epoch)`` and seeds the
    augmentation for this one sample; a plain index (evaluation) leaves the transform as it is."""
    if not isinstance(index, tuple):
        return index
    index, seed, epoch = index
    # albumentations' Compose has set_random_state; a plain callable has no state; a fixed pipeline needs none
    if hasattr(transform, "set_random_state") and _draws(transform):
        digest = hashlib.blake2b(b"%d,%d,%d" % (seed, epoch, index), digest_size=32).digest()
        state = int.from_bytes(digest[:16], "little")
        _NUMPY.bit_generator.state = {"bit_generator": "PCG64", "has_uint32": 0, "uinteger": 0,
                                      "state": {"state": state, "inc": int.from_bytes(digest[16:], "little") | 1}}
        _PYTHON.seed(state & (2**64 - 1))
        transform.set_random_state(_NUMPY, _PYTHON)
    return index


class ResumableSampler(DistributedSampler):
    """One permutation per epoch (seed + epoch), the same for any number of ranks; rank r takes
    positions r, r + W, r + 2W, ... (DistributedSampler's split, so Lightning keeps it as it is).

    Batch j of the W ranks together is therefore exactly batch j of a single process with W times
    the batch size. Yields ``(index, seed, epoch)`` for :func:`seed_sample`; ``start`` skips the
    samples a restarted epoch has already trained on.
    """

    def __init__(self, dataset: Dataset, seed: int = 0, num_replicas: int | None = None, rank: int | None = None):
        distributed = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if distributed else 1
        if rank is None:
            rank = dist.get_rank() if distributed else 0
        # padding (drop_last=False) repeats a few indices so that every rank has as many batches
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:  # a new epoch starts from its beginning
            self.start = 0
        super().set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        start, self.start = self.start, 0
        for index in itertools.islice(super().__iter__(), start, None):
            yield index, self.seed, self.epoch


class ResumableLoader(DataLoader):
    """A DataLoader whose ``state_dict`` says how far into its epoch it is (Lightning saves it in
    every checkpoint and hands it back on resume); with a :class:`ResumableSampler` the resumed
    epoch skips the batches already trained on without loading them."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches = 0  # handed out in the current epoch

    def __iter__(self):
        # a generator: nothing runs (and the sampler's epoch is not read) until the first batch is
        # asked for, after Lightning has set the epoch and loaded the state
        sampler = self.sampler
        self.batches = getattr(sampler, "start", 0) // (self.batch_size or 1)
        for batch in super().__iter__():
            self.batches += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": getattr(self.sampler, "epoch", 0), "batches": self.batches,
                "batch_size": self.batch_size or 1, "world_size": getattr(self.sampler, "num_replicas", 1)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler = self.sampler
        if not isinstance(sampler, ResumableSampler):
            return
        same = state.get("batch_size") == self.batch_size and state.get("world_size") == sampler.num_replicas
        if not same:
            rank_zero_warn(f"resuming with batch size {self.batch_size} on {sampler.num_replicas} rank(s), saved with "
                           f"{state.get('batch_size')} on {state.get('world_size')}: the interrupted epoch restarts "
                           "from its beginning")
            return
        sampler.set_epoch(state["epoch"])
        sampler.start = state["batches"] * self.batch_size
        self.batches = state["batches"]


def train_loader(dataset: Dataset, batch_size: int, seed: int, **kwargs: Any) -> ResumableLoader:
    """The training loader every datamodule uses: shuffled by :class:`ResumableSampler`, last partial
    batch dropped (when there is more than one batch), resumable mid-epoch."""
    sampler = ResumableSampler(dataset, seed)
    return ResumableLoader(dataset, batch_size=batch_size, sampler=sampler,
                           drop_last=sampler.num_samples > batch_size, **kwargs)
