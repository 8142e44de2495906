"""1-D signals: the base module, arrays from .npy/.npz files and sequential digits (folders of WAV files
by class: wav.py; the augmentations: signal_augment.py).

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

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .base import ClassificationDataModule
from .errors import DataError
from .sampling import seed_sample

from .signal_augment import SignalSpec, SignalTransform, augmentations


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


def signal_dataset(datamodule: ClassificationDataModule, split: str) -> SignalDataset:
    """The dataset of a split of any datamodule holding 1-D signals in ``splits`` and their augmentation
    in ``train_spec`` (the signal modules, and SyntheticDataModule with a (C, L) shape)."""
    signals, labels = datamodule.splits[split]
    length = datamodule.input_shape[-1]
    if split == "train":
        transform = SignalTransform(length, True, augmentations(datamodule.train_spec))
    else:
        transform = SignalTransform(length, False, whole=bool(datamodule.eval_resize))
    return SignalDataset(signals, labels, transform)


def standardize_splits(splits: dict[str, tuple[list[np.ndarray], np.ndarray]]) -> None:
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
class SignalDataModule(ClassificationDataModule):
    """Base of the 1-D datamodules: batches of float32 (N, C, L) signals, standardised when loaded, so
    they go to the net as they are (no image statistics, albumentations or Mixup).

    Subclasses fill ``self.splits`` with lists of (C, L_i) float32 arrays and set ``self.channels``,
    ``self.length`` and ``self.names`` (class names) in ``setup``; or earlier, when known.
    """

    def __init__(self, batch_size: int = 64, num_workers: int = 0, pin_memory: bool = False,
                 persistent_workers: bool = False, seed: int = 0, train_transforms: SignalSpec = "signal"):
        super().__init__(batch_size, num_workers, pin_memory, persistent_workers, seed)
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
            standardize_splits(splits)
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
