"""MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100 in their usual on-disk formats.

``prepare_data`` downloads with torchvision when online (``download: true``); otherwise an existing
local copy under ``root`` is read. CIFAR's python batches are pickles, so they are read with an
unpickler that only admits the numpy types they contain, not arbitrary objects.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from .base import ImageDataModule
from .errors import DataError
from .transforms import Spec


class _NumpyOnlyUnpickler(pickle.Unpickler):
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _load_batch(path: Path) -> dict:
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as err:
        raise DataError(f"{path}: not a readable CIFAR batch ({err})") from None


class _Standard(ImageDataModule):
    """Shared logic: official train/test split, an optional seeded validation hold-out."""

    folder: str
    files: tuple[str, ...]
    names: tuple[str, ...] = tuple(str(i) for i in range(10))
    shape: tuple[int, int, int]

    def __init__(self, root: str = "data", download: bool = True, val_fraction: float = 0.0, batch_size: int = 128,
                 num_workers: int = 0, pin_memory: bool = False, persistent_workers: bool = False, seed: int = 0,
                 train_transforms: Spec = None, eval_transforms: Spec = None, mixup: float = 0.0,
                 cutmix: float = 0.0, label_smoothing: float = 0.0):
        super().__init__(batch_size, num_workers, pin_memory, persistent_workers, seed, train_transforms,
                         eval_transforms, mixup, cutmix, label_smoothing)
        self.root, self.download, self.val_fraction = Path(root), download, val_fraction
        self.save_hyperparameters()

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.shape

    @property
    def class_names(self) -> list[str]:
        return list(self.names)

    def missing(self) -> list[Path]:
        return [self.root / self.folder / f for f in self.files if not (self.root / self.folder / f).is_file()]

    def prepare_data(self) -> None:
        if self.missing() and self.download:
            try:
                self.fetch()
            except Exception as err:  # offline, or the mirror is down: fall through to the clear error
                self.download_error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        missing = self.missing()
        if missing:
            why = getattr(self, "download_error", None)
            raise DataError(f"{self.root / self.folder}: missing {', '.join(p.name for p in missing)}"
                            + (f" (download failed: {why})" if why else " (download is off)"))
        (train_x, train_y), (test_x, test_y) = self.read()
        if self.val_fraction > 0:
            order = np.random.default_rng(self.seed).permutation(len(train_x))
            cut = int(len(train_x) * self.val_fraction)
            val, train = order[:cut], order[cut:]
            self.splits = {"train": (train_x[train], train_y[train]), "val": (train_x[val], train_y[val]),
                           "test": (test_x, test_y)}
        else:
            self.splits = {"train": (train_x, train_y), "val": (test_x, test_y), "test": (test_x, test_y)}


class MNISTDataModule(_Standard):
    """MNIST handwritten digits (28x28 grey), from ``root/MNIST/raw`` (torchvision's layout)."""

    folder = "MNIST/raw"
    files = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    shape = (1, 28, 28)
    mean, std = (0.1307,), (0.3081,)
    torchvision_name = "MNIST"

    def fetch(self) -> None:
        import torchvision

        getattr(torchvision.datasets, self.torchvision_name)(str(self.root), train=True, download=True)
        getattr(torchvision.datasets, self.torchvision_name)(str(self.root), train=False, download=True)

    def read(self):
        def idx(name: str) -> np.ndarray:
            data = (self.root / self.folder / name).read_bytes()
            dims = data[3]
            shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
            if data[:2] != b"\0\0" or data[2] != 8 or len(data) != 4 + 4 * dims + int(np.prod(shape)):
                raise DataError(f"{self.root / self.folder / name}: not an IDX file of unsigned bytes")
            return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)

        train = (idx(self.files[0])[..., None], idx(self.files[1]))
        test = (idx(self.files[2])[..., None], idx(self.files[3]))
        return train, test


class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST (28x28 grey clothing), from ``root/FashionMNIST/raw``."""

    folder = "FashionMNIST/raw"
    mean, std = (0.2860,), (0.3530,)
    torchvision_name = "FashionMNIST"
    names = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


class CIFAR10DataModule(_Standard):
    """CIFAR-10 (32x32 RGB), from ``root/cifar-10-batches-py`` (the python version)."""

    folder = "cifar-10-batches-py"
    files = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
    shape = (3, 32, 32)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    names = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    label_key = "labels"
    torchvision_name = "CIFAR10"

    def __init__(self, root: str = "data", download: bool = True, val_fraction: float = 0.0, batch_size: int = 128,
                 num_workers: int = 0, pin_memory: bool = False, persistent_workers: bool = False, seed: int = 0,
                 train_transforms: Spec = "cifar", eval_transforms: Spec = None, mixup: float = 0.0,
                 cutmix: float = 0.0, label_smoothing: float = 0.0):
        super().__init__(root, download, val_fraction, batch_size, num_workers, pin_memory, persistent_workers, seed,
                         train_transforms, eval_transforms, mixup, cutmix, label_smoothing)

    def fetch(self) -> None:
        import torchvision

        getattr(torchvision.datasets, self.torchvision_name)(str(self.root), train=True, download=True)

    def read(self):
        def batches(names) -> tuple[np.ndarray, np.ndarray]:
            parts = [_load_batch(self.root / self.folder / n) for n in names]
            images = np.concatenate([np.asarray(p["data"], np.uint8) for p in parts]).reshape(-1, 3, 32, 32)
            labels = np.concatenate([np.asarray(p[self.label_key], np.int64) for p in parts])
            return np.ascontiguousarray(images.transpose(0, 2, 3, 1)), labels

        return batches(self.files[:-1]), batches(self.files[-1:])


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100 (32x32 RGB, 100 fine classes), from ``root/cifar-100-python``."""

    folder = "cifar-100-python"
    files = ("train", "test")
    mean, std = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
    names = tuple(str(i) for i in range(100))
    label_key = "fine_labels"
    torchvision_name = "CIFAR100"
