"""Small images fast: a split held as one uint8 tensor at the net's size, batches cut by indexing.

For data that fits in memory and a light augmentation (``light``/``auto`` below 64 px, ``none``), the
per-sample Python work of a Dataset + albumentations + collate dominates a small net's step. Here a
batch is one index into an (N, C, S, S) tensor and the light preset's random shift is applied to the
whole batch at once. Each sample's shift is a hash of (seed, epoch, index), like the per-sample
seeds of datamodules/sampling.py: what a sample looks like does not depend on its batch, so a run
resumed mid-epoch sees the same images.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from .transforms import light_shift, resolve_preset

def tensor_preset(spec, size: int, train: bool) -> str | None:
    """The preset this module can run on batched tensors ("light" or "none"), else None."""
    if spec is None:
        return "none"
    if not isinstance(spec, str):
        return None
    name = resolve_preset(spec, size)
    if name == "none" or (name == "light" and train):
        return name
    if name in ("light", "cifar", "digits") and not train:  # their evaluation is a plain resize
        return "none"
    return None


def stack_resized(images: list[np.ndarray], size: int) -> np.ndarray:
    """HWC uint8 images -> (N, C, size, size) uint8, resized once as the Resize transform would."""
    out = []
    for image in images:
        if image.shape[:2] != (size, size):
            image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
        out.append(image if image.ndim == 3 else image[:, :, None])
    return np.ascontiguousarray(np.stack(out).transpose(0, 3, 1, 2))


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: well-spread 64-bit hashes (uint64 arithmetic wraps)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def shifts(indices: np.ndarray, seed: int, epoch: int, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample (dy, dx) in [0, 2 * limit], a pure function of (seed, epoch, index)."""
    with np.errstate(over="ignore"):
        base = _mix(np.uint64(seed) * np.uint64(1_000_003) + np.uint64(epoch) + np.uint64(0x9E3779B97F4A7C15))
        h = _mix(indices.astype(np.uint64) + base)
    span = np.uint64(2 * limit + 1)
    return (h % span).astype(np.int64), ((h >> np.uint64(32)) % span).astype(np.int64)


def shift_batch(images: np.ndarray, dy: np.ndarray, dx: np.ndarray, limit: int) -> np.ndarray:
    """Move each image by (dy - limit, dx - limit) pixels with zero fill: pad, then gather one window per
    image with advanced indexing (no Python loop over the batch). NumPy, not torch: these are
    microsecond operations, and torch's intra-op threads would fight the model's for the cores."""
    n, _, h, w = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (limit, limit), (limit, limit)))
    rows = (dy[:, None] + np.arange(h))[:, :, None]  # (N, H, 1)
    cols = (dx[:, None] + np.arange(w))[:, None, :]  # (N, 1, W)
    out = padded[np.arange(n)[:, None, None], :, rows, cols]  # (N, H, W, C)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


class TensorSplit(Dataset):
    """A split as (N, C, S, S) uint8 + int64 labels (NumPy arrays). ``__getitems__`` hands the DataLoader a whole batch
    (its collate_fn must pass it through); training indices come as (index, seed, epoch)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, preset: str):
        self.images, self.labels, self.preset = images, labels, preset
        self.limit = light_shift(images.shape[-1])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        return self.__getitems__([index])

    def __getitems__(self, indices: list):
        if indices and isinstance(indices[0], tuple):  # training: (index, seed, epoch)
            seed, epoch = indices[0][1], indices[0][2]
            index = np.fromiter((i[0] for i in indices), np.int64, len(indices))
        else:
            seed, epoch, index = 0, 0, np.asarray(indices, np.int64)
        images, labels = self.images[index], self.labels[index]
        if self.preset == "light" and isinstance(indices[0], tuple):
            dy, dx = shifts(index, seed, epoch, self.limit)
            images = shift_batch(images, dy, dx, self.limit)
        return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels), []


def passthrough(batch):
    return batch
