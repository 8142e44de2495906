"""Your own images: an ImageNet-style folder, robust to the bad files real folders contain."""
from __future__ import annotations

import os

from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from .base import ImageDataModule, to_chw_uint8
from .decode import MAX_PIXELS, BadImage, decode, read_header
from pipeline.errors import close_matches

from .errors import DataError
from .balance import BalancedSampler
from .memory import TensorSplit, passthrough, stack_resized, tensor_preset
from .sampling import ResumableLoader, seed_sample, train_loader
from .survey import survey, table
from .transforms import Spec, check_pipeline, pipeline

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def hidden(name: str) -> bool:
    """Names no folder is read under: hidden ones (.ipynb_checkpoints, .DS_Store), macOS zip debris and
    a Synology NAS's thumbnail folders."""
    return name.startswith(".") or name in ("__MACOSX", "@eaDir")


def class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not hidden(p.name))


def image_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(images, other files) under ``folder``, recursively and sorted. torchvision ImageFolder's rule: a
    sample is a file with an image extension (EXTENSIONS); the others (Thumbs.db, notes.txt) are not
    read. Nothing below a hidden name is looked at. Linked sub-folders are followed, as a linked class
    folder is (each real folder once: a link loop ends)."""
    images, others = [], []
    seen: set[str] = set()
    for top, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not hidden(d)]
        for name in files:
            path = Path(top) / name
            if hidden(name) or not path.is_file():  # a broken link is no file
                continue
            (images if path.suffix.lower() in EXTENSIONS else others).append(path)
    return sorted(images), sorted(others)


def list_images(root: Path, classes: list[str], ignored: list[Path] | None = None) -> list[tuple[Path, int]]:
    """(path, class index) of every image of ``classes`` under ``root``; other files go to ``ignored``."""
    items = []
    for index, name in enumerate(classes):
        folder = root / name
        if folder.is_dir():
            found, others = image_files(folder)
            items += [(p, index) for p in found]
            if ignored is not None:
                ignored += others
    return items


def ignored_note(ignored: list[Path], root: Path) -> list[str]:
    """The data table's line for the files a listing left out ([] when none)."""
    if not ignored:
        return []
    example = ignored[0].relative_to(root) if ignored[0].is_relative_to(root) else ignored[0]
    return [f"ignored {len(ignored)} non-image file(s) (e.g. {example}); samples are files with an image "
            f"extension ({', '.join(sorted(EXTENSIONS))})"]


def verify_image_folder(root: str | Path, channels: int = 3, max_pixels: int = MAX_PIXELS) -> list[tuple[str, str]]:
    """Every offending path under ``root`` with the reason: undecodable or truncated images,
    images over ``max_pixels``, zero-byte files, unreadable files and class folders with no image
    files. Only files with an image extension are samples (and checked); others are not read."""
    root = Path(root)
    problems: list[tuple[str, str]] = []
    splits = [root / s for s in ("train", "val") if (root / s).is_dir()] or [root]
    for split in splits:
        for folder in class_folders(split):
            files = image_files(folder)[0]
            if not files:
                problems.append((str(folder), "empty class folder"))
            for path in files:
                reason = check_file(path, channels, max_pixels)
                if reason:
                    problems.append((str(path), reason))
    return problems


def check_file(path: Path, channels: int, max_pixels: int = MAX_PIXELS) -> str | None:
    if path.suffix.lower() not in EXTENSIONS:
        return f"not an image file extension ({path.suffix or 'none'})"
    try:
        decode(path, channels, max_pixels)
    except BadImage as err:
        return err.reason
    return None


def _hint(name: str, classes: list[str]) -> str:
    """' (did you mean 'x'?)' for a near name (case first: val/Cat for train/cat), else ''."""
    same = [c for c in classes if c.lower() == name.lower()]
    if same:
        return f" (did you mean '{same[0]}'?)"
    hint = close_matches(name, classes)
    return hint if hint.startswith(" (did") else ""


class FolderDataset(Dataset):
    """Decodes on demand (or from the in-memory cache); a bad file becomes a marker, not a crash,
    so the main process can report it by name or skip it."""

    def __init__(self, items: list[tuple[Path, int]], transform, channels: int,
                 cache: dict[int, np.ndarray] | None = None, max_pixels: int = MAX_PIXELS):
        self.items, self.transform, self.channels, self.cache = items, transform, channels, cache or {}
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int | tuple[int, int, int]):
        index = seed_sample(index, self.transform)  # training indices carry their augmentation seed
        path, label = self.items[index]
        try:
            image = self.cache[index] if index in self.cache else decode(path, self.channels, self.max_pixels)
        except BadImage as err:
            return None, label, err.sample_message()
        return to_chw_uint8(self.transform(image=image)["image"]), label, None


def collate(samples, stack: bool = True):
    good = [(x, y) for x, y, bad in samples if bad is None]
    bad = [bad for _, _, bad in samples if bad is not None]
    if not stack:  # whole images of different sizes (multi-crop evaluation)
        images = [x for x, _ in good]
    else:
        images = torch.stack([x for x, _ in good]) if good else torch.empty(0, dtype=torch.uint8)
    return images, torch.tensor([y for _, y in good], dtype=torch.int64), bad


class ImageFolderDataModule(ImageDataModule):
    """Images in ``root/train/<class>/*`` and ``root/val/<class>/*`` (ImageNet layout), or in
    ``root/<class>/*`` (or ``root/train/<class>/*`` alone) split by a seeded ``val_fraction``.

    Args:
        root: the dataset folder.
        image_size: side of the square images the model receives; default: the architecture's
            declared input (through the CLI; 224 when used from Python without one).
        channels: 1 (grey) or 3 (RGB); every file is converted to it; default: the architecture's
            (through the CLI; 3 from Python).
        val_fraction: held-out share when there is no val/ folder on disk.
        batch_size: samples per batch.
        num_workers: loader worker processes; ``auto``: none when the split is held as one tensor
            (nothing per sample to parallelise), else one per CPU core but one, at most 8.
        pin_memory: pin batches in page-locked memory.
        persistent_workers: keep workers alive between epochs.
        seed: seed of the split and of the shuffling order.
        train_transforms: preset (auto, light, cifar, digits, imagenet, googlenet, none) or a list of
            albumentations transforms; ``auto``: ``light`` (random shifts of up to 1/16 of the side) below
            64 px, ``imagenet`` from 64 px. Checked before training: it must end at image_size.
        eval_transforms: the same for validation/test; ``auto``: a plain resize below 64 px (the
            training scale), shorter side to image_size/0.875 and a centre crop from 64 px.
        verify: scan every file (predict_root's too) before training and stop with a list of the bad ones.
        skip_bad: skip (and count) files that fail to decode during training instead of stopping.
        cache_bytes: decode everything once and keep it in memory (uint8) if it fits this budget.
        mixup: timm Mixup alpha (0 = off).
        cutmix: timm CutMix alpha (0 = off).
        label_smoothing: label smoothing of the mixed targets.
        balance: ``sampler``: draw training images with probability 1 / their class's size (every
            class equally often); ``none``: as they are.
        show_table: print the data table (classes, images per split, sizes, modes, warnings) in setup.
        predict_root: folder of images for ``predict`` (read recursively, any layout); default: the
            validation images.
        max_pixels: images whose header declares more pixels (width x height) are bad files, never
            decoded (image bombs); default 89,478,485, PIL's threshold (268 MB of decoded RGB).
    """

    def __init__(self, root: str, image_size: int | None = None, channels: int | None = None,
                 val_fraction: float = 0.1,
                 batch_size: int = 64, num_workers: int | Literal["auto"] = "auto", pin_memory: bool = False,
                 persistent_workers: bool = False, seed: int = 0, train_transforms: Spec = "auto",
                 eval_transforms: Spec = None, verify: bool = False, skip_bad: bool = False,
                 cache_bytes: int = 512 * 2**20, mixup: float = 0.0, cutmix: float = 0.0,
                 label_smoothing: float = 0.0, balance: Literal["none", "sampler"] = "none",
                 show_table: bool = True, predict_root: str | None = None, max_pixels: int = MAX_PIXELS):
        super().__init__(batch_size, 0, pin_memory, persistent_workers, seed, train_transforms,
                         eval_transforms if eval_transforms is not None else "auto", mixup, cutmix,
                         label_smoothing)
        self.workers_setting, self.balance, self.show_table = num_workers, balance, show_table
        self.persistent_setting = persistent_workers
        self.tensors: dict[str, TensorSplit] = {}
        image_size, channels = image_size or 224, channels or 3  # unset: the CLI fills in the net's input
        self.root, self.image_size, self.channels = Path(root), image_size, channels
        if channels not in (1, 3):
            raise DataError(f"channels must be 1 or 3, got {channels}")
        if not self.root.is_dir():
            raise DataError(f"{self.root}: image folder not found")
        self.split_on_disk = (self.root / "train").is_dir()
        self._classes = [p.name for p in class_folders(self.root / "train" if self.split_on_disk else self.root)]
        if not self._classes:
            raise DataError(f"{self.root}: no class folders (expected {self.root}/<class>/* or "
                            f"{self.root}/train/<class>/*)")
        if self.split_on_disk and (self.root / "val").is_dir():
            self._check_val_classes(self.root / "val")
        self._classes = self._without_empty(self.root / "train" if self.split_on_disk else self.root, verify, skip_bad)
        if len(self._classes) < 2:
            raise DataError(f"{self.root}: {len(self._classes)} class folder(s) with images "
                            f"({', '.join(self._classes) or 'none'}); a classifier needs at least 2")
        self.val_fraction, self.verify, self.skip_bad, self.cache_bytes = val_fraction, verify, skip_bad, cache_bytes
        if max_pixels <= 0:
            raise DataError(f"max_pixels must be > 0, got {max_pixels}")
        self.max_pixels = max_pixels
        self.predict_root = Path(predict_root) if predict_root else None
        if self.predict_root is not None and not self.predict_root.is_dir():
            raise DataError(f"{self.predict_root}: predict folder not found")
        self.items: dict[str, list[tuple[Path, int]]] = {}
        self.cache: dict[str, dict[int, np.ndarray]] = {}
        self.skipped, self.skipped_files = 0, set()  # distinct bad files left out (skip_bad)
        self.mean, self.std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,), (0.5,))
        self.save_hyperparameters()

    def _check_val_classes(self, val: Path) -> None:
        """A val/ class folder that is no training class would be dropped unseen: an error naming them."""
        unknown = [p.name for p in class_folders(val) if p.name not in self._classes]
        if unknown:
            named = ", ".join(f"'{n}'" + _hint(n, self._classes) for n in unknown)
            raise DataError(f"{val}: class folder(s) not in {self.root / 'train'}: {named}; every validation class "
                            f"must be a training class (rename or remove them; classes: {', '.join(self._classes)})")

    def _without_empty(self, split: Path, verify: bool, skip_bad: bool) -> list[str]:
        """An empty class folder would silently be a class no sample has: an error, unless verify
        lists it with the other bad files (in setup) or skip_bad leaves it out (with a warning)."""
        empty = [name for name in self._classes if not image_files(split / name)[0]]
        if not empty or verify:
            return self._classes
        if not skip_bad:
            raise DataError(f"{split / empty[0]}: empty class folder (no files); add images or remove it"
                            f"{f' ({len(empty) - 1} more empty)' if len(empty) > 1 else ''}, or set "
                            "skip_bad=true to leave empty folders out")
        rank_zero_warn(f"skip_bad: left out {len(empty)} empty class folder(s): "
                       f"{', '.join(str(split / n) for n in empty)}")
        return [name for name in self._classes if name not in empty]

    @property
    def num_classes(self) -> int:
        return len(self._classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    @property
    def class_names(self) -> list[str]:
        return list(self._classes)

    def setup(self, stage: str | None = None) -> None:
        if self.items:
            return
        if self.verify:
            problems = verify_image_folder(self.root, self.channels, self.max_pixels)
            if self.predict_root is not None:  # predict's bad files point here too ("verify=true to list them")
                problems += [(str(p), reason) for p in image_files(self.predict_root)[0]
                             if (reason := check_file(p, self.channels, self.max_pixels))]
            if problems:
                lines = "\n".join(f"{path}: {reason}" for path, reason in problems)
                where = f"{self.root}" + (f" and {self.predict_root}" if self.predict_root is not None else "")
                raise DataError(f"{len(problems)} bad file(s) in {where} (verify):\n{lines}")
        notes: list[str] = []  # what the folder holds that is not read, for the data table's warnings
        if self.split_on_disk:
            beside = [p.name for p in class_folders(self.root) if p.name not in ("train", "val")]
            if beside:
                notes.append(f"ignored folder(s) in {self.root} (neither train/ nor val/): {', '.join(beside)}")
        ignored: list[Path] = []
        if self.split_on_disk and (self.root / "val").is_dir():
            self.items["train"] = list_images(self.root / "train", self._classes, ignored)
            self.items["val"] = list_images(self.root / "val", self._classes, ignored)
        else:  # one folder of classes, or train/ alone (Kaggle's train/ + test/): a seeded share is validation
            items = list_images(self.root / "train" if self.split_on_disk else self.root, self._classes, ignored)
            order = np.random.default_rng(self.seed).permutation(len(items))
            cut = int(round(len(items) * self.val_fraction))
            self.items["val"] = [items[i] for i in sorted(order[:cut])]
            if self.split_on_disk:
                notes.append(f"no {self.root / 'val'}: validation is a seeded val_fraction={self.val_fraction:g} "
                             f"of train/ ({cut} images)")
            self.items["train"] = [items[i] for i in sorted(order[cut:])]
        if not self.items["train"]:
            raise DataError(f"{self.root}: no training images found")
        if self.predict_root is not None:  # labels are the file indices: predictions carry them
            files, others = image_files(self.predict_root)
            if not files:
                raise DataError(f"{self.predict_root}: no image files to predict")
            self.items["predict"] = [(p, i) for i, p in enumerate(files)]
            notes += ignored_note(others, self.predict_root)
        notes += ignored_note(ignored, self.root)
        self.survey = survey(self.items, self._classes, notes)
        if self.show_table and (self.trainer is None or self.trainer.is_global_zero):
            print(table(self.survey, self.channels, self.image_size))
        # every pipeline ends at the net's size, checked here on the data's own sizes, not at batch 1
        seen = list(self.survey.size_range()) if self.survey.sizes else [(self.image_size, self.image_size)]
        check_pipeline(self.train_spec, self.image_size, True, seen, self.channels, "data.train_transforms")
        check_pipeline(self.eval_spec, self.image_size, False, seen, self.channels, "data.eval_transforms")
        self.cache = {split: self._cached(items) for split, items in self.items.items()}
        self.tensors = {split: self._as_tensor(split) for split in ("train", "val")}
        self.tensors = {split: t for split, t in self.tensors.items() if t is not None}

    def _as_tensor(self, split: str) -> TensorSplit | None:
        """The split as one tensor at the net's size, when every image is cached and the preset is one
        that runs on batched tensors (datamodules/memory.py)."""
        items, cache = self.items.get(split, []), self.cache.get(split, {})
        kind = tensor_preset(self.train_spec if split == "train" else self.eval_spec, self.image_size,
                             split == "train")
        if kind is None or not items or len(cache) != len(items):
            return None
        images = stack_resized([cache[i] for i in range(len(items))], self.image_size)
        return TensorSplit(images, np.array([label for _, label in items], np.int64), kind)

    def workers(self, split: str) -> int:
        if self.workers_setting != "auto":
            return int(self.workers_setting)
        if split in self.tensors:
            return 0  # a batch is one indexing operation: worker processes would only add copies
        import os

        return max(0, min(8, (os.cpu_count() or 1) - 1))

    def _cached(self, items: list[tuple[Path, int]]) -> dict[int, np.ndarray]:
        """Decode once when the decoded images fit the budget (sizes read from the headers only)."""
        total = 0
        for path, _ in items:
            try:
                total += read_header(path, self.max_pixels).pixels * self.channels
            except BadImage:
                continue
            if total > self.cache_bytes:
                return {}
        cache = {}
        for index, (path, _) in enumerate(items):
            try:
                cache[index] = decode(path, self.channels, self.max_pixels)
            except BadImage:
                pass  # reported (or skipped) when the loader reaches it
        return cache

    def train_dataloader(self) -> DataLoader:
        dataset = self.tensors.get("train") or FolderDataset(
            self.items["train"], pipeline(self.train_spec, self.image_size, True), self.channels,
            self.cache.get("train"), self.max_pixels)
        self.num_workers = self.workers("train")
        self.persistent_workers = self.persistent_setting and self.num_workers > 0
        args = dict(num_workers=self.num_workers, pin_memory=self.pin_memory,
                    persistent_workers=self.persistent_workers,
                    collate_fn=passthrough if isinstance(dataset, TensorSplit) else collate,
                    generator=torch.Generator().manual_seed(self.seed))
        if self.balance == "sampler":
            sampler = BalancedSampler(dataset, [label for _, label in self.items["train"]], self.seed)
            return ResumableLoader(dataset, batch_size=self.batch_size, sampler=sampler,
                                   drop_last=sampler.num_samples > self.batch_size, **args)
        # split across ranks and resumable mid-epoch (datamodules/sampling.py)
        return train_loader(dataset, self.batch_size, self.seed, **args)

    # -- evaluation: every sample once, in order (see ImageDataModule.eval_loader) -------------
    def eval_dataset(self, split: str) -> FolderDataset:
        if split == "predict" and self.predict_root is None:  # the validation images, labelled by index
            return FolderDataset([(p, i) for i, (p, _) in enumerate(self.items["val"])], self.eval_transform(),
                                 self.channels, self.cache.get("val"), self.max_pixels)
        return FolderDataset(self.items[split], self.eval_transform(), self.channels, self.cache.get(split),
                             self.max_pixels)

    def _eval_loader(self, split: str) -> DataLoader:
        if split in self.tensors and not self.eval_resize:  # the in-memory tensor at the training scale
            self.num_workers, self.persistent_workers = 0, False
            return self.eval_loader(self.tensors[split], passthrough)
        self.num_workers = self.workers(split)
        self.persistent_workers = self.persistent_setting and self.num_workers > 0
        return self.eval_loader(self.eval_dataset(split), partial(collate, stack=not self.eval_resize))

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("predict")

    def predict_names(self) -> list[str]:
        if self.predict_root is None:
            return [str(p) for p, _ in self.items["val"]]
        return [str(p.relative_to(self.predict_root)) for p, _ in self.items["predict"]]

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, torch.Tensor):  # the module's example input (Lightning's model summary)
            return batch
        images, targets, bad = batch
        report_bad(self, bad, "verify=true to list them all")
        return super().on_after_batch_transfer((images, targets), dataloader_idx)


def report_bad(module: Any, bad: list[str], listing: str) -> None:
    """The bad files (or samples) a batch left out: an error naming the first, or, with the module's
    ``skip_bad``, counted once each in ``module.skipped`` with a warning naming the new ones."""
    if not bad:
        return
    if not module.skip_bad:
        raise DataError(f"{bad[0]}; set skip_bad=true to skip such files, or {listing}")
    new = [b for b in dict.fromkeys(bad) if b not in module.skipped_files]  # once, not again each epoch
    module.skipped_files.update(new)
    module.skipped = len(module.skipped_files)
    if new:
        rank_zero_warn(f"skipped {len(new)} bad file(s) ({module.skipped} so far): {'; '.join(new)}")
