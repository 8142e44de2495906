"""Test-time windows of 1-D signals: the 1-D analogue of multi-crop evaluation.

The loader delivers whole signals (at least the model's input length, zero-padded otherwise); each
is cut into ``count`` windows of the input length, evenly spaced from its start to its end (one
window: the centre one), and the class probabilities of the windows are averaged like crops.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def window_starts(length: int, size: int, count: int) -> list[int]:
    """Starts of ``count`` windows of ``size`` samples evenly spaced over ``length`` samples: the first
    at 0 and the last ending at the end; a single window is the centre one."""
    slack = max(length - size, 0)
    if count == 1:
        return [slack // 2]
    return [round(i * slack / (count - 1)) for i in range(count)]


def make_windows(signal: torch.Tensor, count: int, size: int) -> torch.Tensor:
    """(count, C, size) windows of one (C, L) signal; a signal shorter than ``size`` is zero-padded
    on both sides first."""
    length = signal.shape[-1]
    if length < size:
        left = (size - length) // 2
        signal = F.pad(signal, (left, size - length - left))
        length = size
    return torch.stack([signal[:, s:s + size] for s in window_starts(length, size, count)])
