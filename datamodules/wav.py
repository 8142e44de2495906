"""Folders of WAV files by class as 1-D signals (read with scipy.io.wavfile)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DataError
from .signal_augment import SignalSpec
from .signals import SignalDataModule, split_index

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
