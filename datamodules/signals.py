"""1-D signals: arrays from .npy/.npz files, folders of WAV files by class, and sequential digits.

Signals are float32 (C, L) arrays, standardised once when loaded. Training cuts a window of the
net's input length at a random place (padding short signals with zeros) and augments it; evaluation
takes the centre window, or, for ``--eval.crops windows``, the whole signal, which the evaluator cuts
into evenly spaced windows on the device (pipeline/evaluation/windows.py) and averages like crops.

Augmentation is declared like the image presets: a preset name (``signal``, ``none``) or a list

    train_transforms:
      - {name: TimeShift, max_shift: 0.1}     # roll by up to 10% of the length, zeros shifted in
      - {name: Gain, min_gain: 0.8, max_gain: 1.25}
      - {name: Noise, std: 0.05}               # additive Gaussian noise (data are standardised)
"""
from __future__ import annotations

import difflib
import random
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from .base import ImageDataModule
from .errors import DataError
from .sampling import seed_sample

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


class SignalDataset(Dataset):
    """Signals (a list of (C, L_i) arrays, or one (N, C, L) array) and their labels."""

    def __init__(self, signals, labels: np.ndarray, transform: SignalTransform):
        self.signals, self.labels, self.transform = signals, np.asarray(labels, dtype=np.int64), transform

    def __len__(self) -> int:
        return len(self.signals)

    def __getitem__(self, index: int | tuple[int, int, int]) -> tuple[torch.Tensor, int]:
        index = seed_sample(index, self.transform)
        x = self.transform(np.asarray(self.signals[index], dtype=np.float32))
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), int(self.labels[index])


def signal_dataset(datamodule: ImageDataModule, split: str) -> SignalDataset:
    """The dataset of a split of any datamodule holding 1-D signals in ``splits``."""
    signals, labels = datamodule.splits[split]
    length = datamodule.input_shape[-1]
    if split == "train":
        transform = SignalTransform(length, True, augmentations(datamodule.train_spec))
    else:
        transform = SignalTransform(length, False, whole=bool(datamodule.eval_resize))
    return SignalDataset(signals, labels, transform)


def standardise(splits: dict[str, tuple[list[np.ndarray], np.ndarray]]) -> None:
    """Zero mean and unit variance per channel, with the training split's statistics, in place."""
    train = splits["train"][0]
    joined = np.concatenate([np.asarray(s, dtype=np.float64) for s in train], axis=-1)
    mean, std = joined.mean(-1, keepdims=True), joined.std(-1, keepdims=True)
    std[std == 0] = 1.0
    for name, (signals, labels) in splits.items():
        splits[name] = ([((s - mean) / std).astype(np.float32) for s in signals], labels)


def split_index(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a seeded train/validation split, stratified when every class has two samples."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None  # a class with one sample cannot be split
    return train_test_split(np.arange(len(labels)), test_size=fraction, random_state=seed, stratify=stratify)


def stratified_split(signals: list[np.ndarray], labels: np.ndarray, fraction: float, seed: int):
    train, val = split_index(labels, fraction, seed)
    return ([signals[i] for i in train], labels[train]), ([signals[i] for i in val], labels[val])


# -- datamodules ----------------------------------------------------------------------------------
class SignalDataModule(ImageDataModule):
    """Base of the 1-D datamodules: batches of float32 (N, C, L) signals.

    Subclasses fill ``self.splits`` with lists of (C, L_i) float32 arrays and set ``self.channels``,
    ``self.length`` and ``self.names`` (class names) in ``setup``; or earlier, when known.
    """

    def __init__(self, batch_size: int = 64, num_workers: int = 0, pin_memory: bool = False,
                 persistent_workers: bool = False, seed: int = 0, train_transforms: SignalSpec = "signal"):
        super().__init__(batch_size, num_workers, pin_memory, persistent_workers, seed, None, None)
        augmentations(train_transforms)  # a mistake is reported now, not in a loader worker
        self.train_spec = train_transforms
        self.channels: int | None = None
        self.length: int | None = None
        self.names: list[str] = []

    @property
    def num_classes(self) -> int:
        self.setup()
        return len(self.names)

    @property
    def input_shape(self) -> tuple[int, int]:
        if self.channels is None or self.length is None:
            self.setup()
        return (self.channels, self.length)  # type: ignore[return-value]

    @property
    def class_names(self) -> list[str]:
        self.setup()
        return list(self.names)

    def dataset(self, split: str) -> SignalDataset:  # type: ignore[override]
        return signal_dataset(self, split)

    def finish(self, splits: dict[str, tuple[list[np.ndarray], np.ndarray]], names: list[str], length: int | None,
               standardize: bool) -> None:
        """Check, standardise and keep the splits; the length defaults to the longest training signal."""
        channels = {s.shape[0] for split in splits.values() for s in split[0]}
        if len(channels) != 1:
            raise DataError(f"signals have different numbers of channels: {sorted(channels)}")
        if standardize:
            standardise(splits)
        self.splits, self.names, self.channels = splits, names, channels.pop()
        self.length = length or max(s.shape[-1] for s in splits["train"][0])


def _as_signals(array: np.ndarray, where: str) -> list[np.ndarray]:
    if array.ndim == 2:
        array = array[:, None, :]  # (N, L): one channel
    if array.ndim != 3 or not np.issubdtype(array.dtype, np.number) or array.shape[0] == 0:
        raise DataError(f"{where}: expected a numeric array of shape (N, L) or (N, C, L), got "
                        f"{array.dtype} {tuple(array.shape)}")
    return list(array.astype(np.float32))


def _labels(array: np.ndarray, count: int, where: str) -> np.ndarray:
    if array.ndim != 1 or len(array) != count or not np.issubdtype(array.dtype, np.integer) or array.min() < 0:
        raise DataError(f"{where}: expected {count} non-negative integer labels, got {array.dtype} "
                        f"{tuple(array.shape)}")
    return array.astype(np.int64)


def load_arrays(signals: str | Path, labels: str | Path | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Signals and labels from one .npz (arrays 'signals' and 'labels', or 'x' and 'y') or two .npy files."""
    path = Path(signals)
    if not path.is_file():
        raise DataError(f"signals file not found: {path}")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:  # no pickled objects: untrusted input
                keys = ("signals", "labels") if "signals" in data else ("x", "y")
                if keys[0] not in data or keys[1] not in data:
                    raise DataError(f"{path}: needs arrays 'signals' and 'labels' (or 'x' and 'y'), has "
                                    f"{', '.join(data.files) or 'none'}")
                x, y = data[keys[0]], data[keys[1]]
                label_where = f"{path}: '{keys[1]}'"
        else:
            if labels is None:
                raise DataError(f"{path}: a .npy file holds only the signals; give the labels' .npy file too")
            x, y = np.load(path, allow_pickle=False), np.load(Path(labels), allow_pickle=False)
            label_where = str(labels)
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable NumPy file ({str(err).splitlines()[0]})") from None
    x_list = _as_signals(np.asarray(x), str(path))
    return x_list, _labels(np.asarray(y), len(x_list), label_where)


class SignalArrayDataModule(SignalDataModule):
    """1-D signals from NumPy files: an ``.npz`` with arrays ``signals`` (N, L) or (N, C, L) and
    ``labels`` (N,) (or ``x`` and ``y``), or a ``.npy`` of signals with a ``.npy`` of labels.

    Args:
        train: the training signals (.npz, or .npy with ``train_labels``).
        train_labels: the training labels (.npy), when ``train`` is a .npy.
        val: validation signals, same forms; default: ``val_fraction`` of ``train``, stratified.
        val_labels: the validation labels (.npy), when ``val`` is a .npy.
        test: test signals (default: validation's).
        test_labels: the test labels (.npy), when ``test`` is a .npy.
        class_names: names of the classes 0, 1, ...; default: the label numbers.
        length: samples per window (the net's input length); default: the longest training signal.
        val_fraction: share held out for validation when ``val`` is not given.
        standardize: zero mean, unit variance per channel (training statistics).
        batch_size: samples per batch.
        num_workers: loader worker processes.
        pin_memory: pin batches in page-locked memory.
        persistent_workers: keep workers alive between epochs.
        seed: seed of the split, the order and the augmentation.
        train_transforms: augmentation preset (signal, none) or a list of {name: TimeShift|Gain|Noise, ...}.
    """

    def __init__(self, train: str, train_labels: str | None = None, val: str | None = None,
                 val_labels: str | None = None, test: str | None = None, test_labels: str | None = None,
                 class_names: list[str] | None = None, length: int | None = None, val_fraction: float = 0.2,
                 standardize: bool = True, batch_size: int = 64, num_workers: int = 0, pin_memory: bool = False,
                 persistent_workers: bool = False, seed: int = 0, train_transforms: SignalSpec = "signal"):
        super().__init__(batch_size, num_workers, pin_memory, persistent_workers, seed, train_transforms)
        if not 0.0 < val_fraction < 1.0:
            raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if length is not None and length <= 0:
            raise DataError(f"length must be positive, got {length}")
        self.files = {"train": (train, train_labels), "val": (val, val_labels), "test": (test, test_labels)}
        self.given_names, self.given_length = class_names, length
        self.val_fraction, self.standardize = val_fraction, standardize
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        loaded = {k: load_arrays(*v) for k, v in self.files.items() if v[0]}
        if "val" not in loaded:
            loaded["train"], loaded["val"] = stratified_split(*loaded["train"], self.val_fraction, self.seed)
        count = 1 + max(int(labels.max()) for _, labels in loaded.values())
        names = self.given_names or [str(i) for i in range(count)]
        if len(names) < count:
            raise DataError(f"class_names: {len(names)} names for labels up to {count - 1}")
        self.finish(loaded, [str(n) for n in names], self.given_length, self.standardize)


def read_wav(path: Path) -> tuple[int, np.ndarray]:
    """(sample rate, float32 (C, L) in [-1, 1]) of a WAV file (scipy.io.wavfile: PCM and float)."""
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(path)
    except Exception as err:  # noqa: BLE001 - whatever is wrong with the file, the user fixes the file
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: not a readable WAV file ({reason})") from None
    if data.size == 0:
        raise DataError(f"{path}: the WAV file holds no samples")
    if data.dtype == np.uint8:  # 8-bit PCM is unsigned, centred on 128
        signal = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.integer):
        signal = data.astype(np.float32) / float(-np.iinfo(data.dtype).min)
    else:
        signal = data.astype(np.float32)
    signal = signal[:, None] if signal.ndim == 1 else signal
    return int(rate), np.ascontiguousarray(signal.T)


def _wav_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() == ".wav")


class SignalFolderDataModule(SignalDataModule):
    """WAV files by class: ``root/<class>/*.wav`` split by ``val_fraction``, or ``root/train/<class>``
    and ``root/val/<class>``. Every file must have the same sample rate and number of channels.

    Args:
        root: the folder.
        length: samples per window (the net's input length); default: the longest training file.
        val_fraction: share held out for validation when there is no ``root/val``.
        standardize: zero mean, unit variance per channel (training statistics).
        predict_root: folder of WAV files (read recursively) for ``predict``; default: the validation files.
        batch_size: samples per batch.
        num_workers: loader worker processes.
        pin_memory: pin batches in page-locked memory.
        persistent_workers: keep workers alive between epochs.
        seed: seed of the split, the order and the augmentation.
        train_transforms: augmentation preset (signal, none) or a list of {name: TimeShift|Gain|Noise, ...}.
    """

    def __init__(self, root: str, length: int | None = None, val_fraction: float = 0.2, standardize: bool = True,
                 predict_root: str | None = None, batch_size: int = 64, num_workers: int = 0,
                 pin_memory: bool = False, persistent_workers: bool = False, seed: int = 0,
                 train_transforms: SignalSpec = "signal"):
        super().__init__(batch_size, num_workers, pin_memory, persistent_workers, seed, train_transforms)
        if not 0.0 < val_fraction < 1.0:
            raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if length is not None and length <= 0:
            raise DataError(f"length must be positive, got {length}")
        self.root, self.predict_root = Path(root), predict_root
        self.given_length, self.val_fraction, self.standardize = length, val_fraction, standardize
        self.paths: dict[str, list[Path]] = {}
        self.rate: int | None = None
        self.first: Path | None = None  # the file that set the sample rate
        self.save_hyperparameters()

    def _read(self, files: list[Path]) -> list[np.ndarray]:
        signals = []
        for path in files:
            rate, signal = read_wav(path)
            if self.rate is None:
                self.rate, self.first = rate, path
            elif rate != self.rate:
                raise DataError(f"{path}: sample rate {rate} Hz, but {self.first} has {self.rate} Hz "
                                "(resample the files to one rate)")
            signals.append(signal)
        return signals

    def _classes(self, folder: Path) -> tuple[list[Path], list[int], list[str]]:
        if not folder.is_dir():
            raise DataError(f"signal folder not found: {folder}")
        names = sorted(p.name for p in folder.iterdir() if p.is_dir())
        if not names:
            raise DataError(f"{folder}: no class folders (expected {folder}/<class>/*.wav)")
        files, labels = [], []
        for label, name in enumerate(names):
            found = _wav_files(folder / name)
            if not found:
                raise DataError(f"{folder / name}: no .wav files in this class folder")
            files += found
            labels += [label] * len(found)
        return files, labels, names

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        split_folders = (self.root / "train").is_dir() and (self.root / "val").is_dir()
        files, labels, names = self._classes(self.root / "train" if split_folders else self.root)
        signals, y = self._read(files), np.asarray(labels, dtype=np.int64)
        if split_folders:
            val_files, val_labels, val_names = self._classes(self.root / "val")
            if val_names != names:
                raise DataError(f"{self.root / 'val'}: class folders {val_names} differ from train's {names}")
            splits = {"train": (signals, y), "val": (self._read(val_files), np.asarray(val_labels, dtype=np.int64))}
            self.paths = {"train": files, "val": val_files}
        else:
            train_idx, val_idx = split_index(y, self.val_fraction, self.seed)
            splits = {"train": ([signals[i] for i in train_idx], y[train_idx]),
                      "val": ([signals[i] for i in val_idx], y[val_idx])}
            self.paths = {"train": [files[i] for i in train_idx], "val": [files[i] for i in val_idx]}
        if self.predict_root:
            predict_files = _wav_files(Path(self.predict_root))
            if not predict_files:
                raise DataError(f"predict_root: no .wav files under {self.predict_root}")
            splits["predict"] = (self._read(predict_files), np.zeros(len(predict_files), dtype=np.int64))
            self.paths["predict"] = predict_files
        self.finish(splits, names, self.given_length, self.standardize)

    def predict_dataloader(self):
        from .base import IndexedDataset

        if "predict" not in self.splits:
            return super().predict_dataloader()
        return self.eval_loader(IndexedDataset(self.dataset("predict")))

    def predict_names(self) -> list[str]:
        return [str(p) for p in self.paths["predict" if "predict" in self.splits else self.test_split()]]


class SequentialDigitsDataModule(SignalDataModule):
    """Sequential digits: scikit-learn's 1,797 handwritten 8x8 digits read pixel by pixel, row by row,
    as one-channel 1-D sequences of 64 steps (``image_size`` 8) or, upsampled first, of
    ``image_size``^2 steps - the small sibling of "sequential MNIST". No download.

    Args:
        image_size: side the 8x8 images are resized to before they are read out (8: 64 steps).
        val_fraction: share held out for validation (and test), stratified.
        batch_size: samples per batch.
        num_workers: loader worker processes.
        pin_memory: pin batches in page-locked memory.
        persistent_workers: keep workers alive between epochs.
        seed: seed of the split, the order and the augmentation.
        train_transforms: augmentation preset (signal, none) or a list of {name: TimeShift|Gain|Noise, ...}.
    """

    def __init__(self, image_size: int = 8, val_fraction: float = 0.2, batch_size: int = 64, num_workers: int = 0,
                 pin_memory: bool = False, persistent_workers: bool = False, seed: int = 0,
                 train_transforms: SignalSpec = "none"):
        super().__init__(batch_size, num_workers, pin_memory, persistent_workers, seed, train_transforms)
        if not 0.0 < val_fraction < 1.0:
            raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if image_size <= 0:
            raise DataError(f"image_size must be positive, got {image_size}")
        self.image_size, self.val_fraction = image_size, val_fraction
        self.channels, self.length, self.names = 1, image_size * image_size, [str(i) for i in range(10)]
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        import cv2
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = digits.images.astype(np.float32) / 16.0
        if self.image_size != 8:
            images = np.stack([cv2.resize(im, (self.image_size,) * 2, interpolation=cv2.INTER_LINEAR)
                               for im in images])
        # the digits' statistics, as for the images (DigitsDataModule): mean 0.3, std 0.4
        sequences = list(((images.reshape(len(images), 1, -1) - 0.3) / 0.4).astype(np.float32))
        train, val = stratified_split(sequences, digits.target.astype(np.int64), self.val_fraction, self.seed)
        self.splits = {"train": train, "val": val}
