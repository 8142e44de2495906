"""Augmentation of 1-D signals (datamodules/signals.py): a preset name (``signal``, ``none``) or a list
of these transforms, applied to a (C, L) float32 array with one seeded generator per sample, then the
window of the net's input length (random in training, centred in evaluation)."""
from __future__ import annotations

import difflib
import random
from typing import Any, Callable

import numpy as np

from .errors import DataError

SignalSpec = str | list[dict[str, Any]] | None


# -- augmentation ---------------------------------------------------------------------------------
class TimeShift:
    """Shift along time by up to ``max_shift`` x the length, either way; zeros fill the gap."""

    def __init__(self, max_shift: float = 0.1, p: float = 1.0):
        if not 0.0 <= max_shift < 1.0 or not 0.0 <= p <= 1.0:
            raise ValueError(f"max_shift must be in [0, 1) and p in [0, 1], got {max_shift} and {p}")
        self.max_shift, self.p = max_shift, p

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        limit = int(self.max_shift * x.shape[-1])
        if limit == 0 or rng.random() >= self.p:
            return x
        shift = int(rng.integers(-limit, limit + 1))
        out = np.zeros_like(x)
        if shift >= 0:
            out[:, shift:] = x[:, :x.shape[-1] - shift]
        else:
            out[:, :shift] = x[:, -shift:]
        return out


class Gain:
    """Multiply by a factor drawn log-uniformly from [min_gain, max_gain]."""

    def __init__(self, min_gain: float = 0.8, max_gain: float = 1.25, p: float = 1.0):
        if not 0.0 < min_gain <= max_gain or not 0.0 <= p <= 1.0:
            raise ValueError(f"need 0 < min_gain <= max_gain and p in [0, 1], got {min_gain}, {max_gain}, {p}")
        self.min_gain, self.max_gain, self.p = min_gain, max_gain, p

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.p:
            return x
        return x * np.float32(np.exp(rng.uniform(np.log(self.min_gain), np.log(self.max_gain))))


class Noise:
    """Add Gaussian noise of standard deviation ``std`` (in units of the standardised signal)."""

    def __init__(self, std: float = 0.05, p: float = 1.0):
        if std < 0 or not 0.0 <= p <= 1.0:
            raise ValueError(f"need std >= 0 and p in [0, 1], got {std} and {p}")
        self.std, self.p = std, p

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if rng.random() >= self.p:
            return x
        return x + rng.normal(0.0, self.std, x.shape).astype(np.float32)


AUGMENTATIONS: dict[str, type] = {"TimeShift": TimeShift, "Gain": Gain, "Noise": Noise}
PRESETS = ("signal", "none")


def build_augmentation(item: dict[str, Any]) -> Callable:
    if not isinstance(item, dict) or "name" not in item:
        raise DataError(f"a signal transform must be a mapping with 'name', got {item!r}")
    args = dict(item)
    name = args.pop("name")
    if name not in AUGMENTATIONS:
        near = difflib.get_close_matches(str(name), list(AUGMENTATIONS), n=2)
        hint = f" (did you mean {' or '.join(near)}?)" if near else ""
        raise DataError(f"unknown signal transform '{name}'{hint}; known: {', '.join(AUGMENTATIONS)}")
    try:
        return AUGMENTATIONS[name](**args)
    except (TypeError, ValueError) as err:
        raise DataError(f"signal transform '{name}': {str(err).splitlines()[0]}") from None


def augmentations(spec: SignalSpec) -> list[Callable]:
    """A preset name (signal: shift 10%, gain 0.8-1.25, noise 0.05; none) or a list of transforms."""
    if spec is None or spec == "none":
        return []
    if spec == "signal":
        return [TimeShift(0.1), Gain(0.8, 1.25), Noise(0.05)]
    if isinstance(spec, str):
        raise DataError(f"unknown signal augmentation preset '{spec}'; known: {', '.join(PRESETS)}")
    return [build_augmentation(t) for t in spec]


# -- windows --------------------------------------------------------------------------------------
def fit_length(x: np.ndarray, length: int, start: int | None = None) -> np.ndarray:
    """A window of ``length`` samples starting at ``start`` (default: centred); a shorter signal is
    zero-padded instead, placed ``start`` samples in (default: centred)."""
    size = x.shape[-1]
    if size >= length:
        start = (size - length) // 2 if start is None else start
        return x[:, start:start + length]
    offset = (length - size) // 2 if start is None else start
    out = np.zeros((x.shape[0], length), dtype=x.dtype)
    out[:, offset:offset + size] = x
    return out


class SignalTransform:
    """Window of ``length`` (random in training, centred otherwise; ``whole`` keeps the whole signal,
    padded to at least ``length``, for windowed evaluation) then the augmentations. Seeded per sample
    through ``set_random_state`` (datamodules/sampling.py), like albumentations' pipelines."""

    def __init__(self, length: int, train: bool, steps: list[Callable] | None = None, whole: bool = False):
        self.length, self.train, self.steps, self.whole = length, train, steps or [], whole
        self.rng = np.random.default_rng()

    def set_random_state(self, rng: np.random.Generator, _python_random: random.Random) -> None:
        self.rng = rng

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.whole:
            return fit_length(x, self.length) if x.shape[-1] < self.length else x
        if self.train:
            slack = abs(x.shape[-1] - self.length)
            x = fit_length(x, self.length, int(self.rng.integers(0, slack + 1)))
            for step in self.steps:
                x = step(x, self.rng)
            return x
        return fit_length(x, self.length)
