"""Data at cluster scale: an optimized dataset (``pipeline data optimize``) streamed with LitData.

LitData owns the format, the reading, the local cache, the split across ranks and workers, and the
loader's state; this module adds what the folder module gives: the same presets and transforms, the
data table, class names, evaluation loaders (every sample once, in order; multi-crop), bad samples
named, and each training sample's augmentation seeded by (seed, epoch, index) so a resumed epoch
sees the same images.
"""
from __future__ import annotations

import json
import os
import tempfile
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
from litdata import StreamingDataLoader, StreamingDataset
from litdata.streaming.sampler import ChunkedIndex
from torch.utils.data import DataLoader, Dataset

from .base import ImageDataModule, to_chw_uint8
from .decode import MAX_PIXELS, BadImage, decode_bytes
from .errors import DataError
from .folder import IMAGENET_MEAN, IMAGENET_STD, collate, report_bad
from .optimize import FORMAT, MANIFEST, survey_from_json
from .sampling import seed_sample
from .survey import table
from .transforms import Spec, check_pipeline, pipeline


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


class ChunkImages(StreamingDataset):
    """One split's chunks; items are ``(CHW uint8 image, label, None)`` like the folder module's, or
    ``(None, label, "where: why")`` for a sample that cannot be read or decoded, so that the main
    process names it (an exception raised in a loader worker would arrive as a traceback)."""

    def __init__(self, input_dir: str, augment, channels: int, max_pixels: int, train: bool, **litdata: Any):
        super().__init__(input_dir, **litdata)
        # not ``self.transform``: LitData applies an attribute of that name to the raw sample itself
        self.augment, self.channels, self.max_pixels, self.train = augment, channels, max_pixels, train
        self.labels_are_indices = False  # predict: the sample's position instead of its label
        self.where = input_dir.rstrip("/")

    def _place(self, index: ChunkedIndex | int) -> str:
        if isinstance(index, ChunkedIndex) and index.chunk_index < len(self.subsampled_files):
            return f"{self.where}/{self.subsampled_files[index.chunk_index]} sample {index.index}"
        return f"{self.where} sample {getattr(index, 'index', index)}"

    def __getitem__(self, index: ChunkedIndex | int):
        try:
            sample = super().__getitem__(index)
            data, label, position, name = sample["image"], int(sample["label"]), int(sample["index"]), sample["name"]
        except Exception as err:  # a chunk LitData cannot parse: named here, raised in the main process
            return None, -1, f"{self._place(index)}: cannot read the chunk ({_first_line(err)})"
        label = position if self.labels_are_indices else label
        try:
            image = decode_bytes(data, f"{self._place(index)} ({name})", self.channels, self.max_pixels)
        except BadImage as err:
            return None, label, err.sample_message()
        # the sample's own seed, as the folder module's: the same augmentation whatever the order
        seed_sample((position, self.seed, self.current_epoch) if self.train else position, self.augment)
        return to_chw_uint8(self.augment(image=image)["image"]), label, None


class InOrder(Dataset):
    """Evaluation: the split by position (random access into the chunks), so the evaluation loaders'
    samplers give every sample once, in order, split across ranks as for the folder module."""

    def __init__(self, chunks: ChunkImages, length: int):
        self.chunks, self.length = chunks, length

    def __len__(self) -> int:
        return self.length  # the whole split (LitData's own length is this rank's share)

    def __getitem__(self, index: int):
        return self.chunks[int(index)]


def local_path(input_dir: str) -> str:
    """``local:/shared/path`` is LitData's way to copy a file system's chunks into the cache as a bucket's
    are (a slow network file system); the files themselves are at ``/shared/path``."""
    return input_dir.removeprefix("local:")


def read_manifest(input_dir: str, cache_dir: str | None) -> dict[str, Any]:
    """``dataset.json`` of an optimized dataset (local, shared file system or a bucket)."""
    if "://" in input_dir:
        from litdata.streaming.fs_provider import _get_fs_provider  # LitData's client for buckets

        local = Path(cache_dir or tempfile.mkdtemp(prefix="streaming-")) / MANIFEST
        local.parent.mkdir(parents=True, exist_ok=True)
        url = f"{input_dir.rstrip('/')}/{MANIFEST}"
        try:
            _get_fs_provider(url).download_file(url, str(local))
        except Exception as err:  # missing, no access or no network: the user's to fix
            raise DataError(f"{input_dir}: not an optimized dataset, or not reachable ({url}: "
                            f"{_first_line(err)})") from None
        path = local
    else:
        path = Path(local_path(input_dir)) / MANIFEST
        if not path.parent.is_dir():
            raise DataError(f"{input_dir}: folder not found (data.input_dir)")
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{input_dir}: not an optimized dataset (no {MANIFEST}); write one with `python -m pipeline "
                        f"data optimize --root FOLDER --out {input_dir}`") from None
    except (OSError, ValueError) as err:
        raise DataError(f"{input_dir}/{MANIFEST}: unreadable ({_first_line(err)})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{input_dir}/{MANIFEST}: not written by this version of `pipeline data optimize`")
    if not manifest.get("complete"):
        raise DataError(f"{input_dir}: incomplete (optimize was interrupted); run the same `pipeline data optimize` "
                        "again to finish it")
    return manifest


def check_chunks(split_dir: Path) -> None:
    """Every chunk ``index.json`` lists is there, whole (local and shared-file-system datasets), before
    training starts rather than at the batch that reaches it."""
    index_file = split_dir / "index.json"
    try:
        chunks = json.loads(index_file.read_text())["chunks"]
    except FileNotFoundError:
        raise DataError(f"{index_file}: missing; not an optimized dataset (run `pipeline data optimize` again)") \
            from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{index_file}: corrupt ({_first_line(err)})") from None
    for chunk in chunks:
        path = split_dir / chunk["filename"]
        if not path.is_file():
            raise DataError(f"{path}: missing chunk (listed in {index_file}); copy it again or optimize again")
        if path.stat().st_size != chunk["chunk_bytes"]:
            raise DataError(f"{path}: corrupt chunk ({path.stat().st_size} bytes, {index_file} says "
                            f"{chunk['chunk_bytes']}); copy it again or optimize again")


class StreamingDataModule(ImageDataModule):
    """An optimized dataset (``python -m pipeline data optimize``) read with LitData's
    StreamingDataset and StreamingDataLoader: from a local folder, a shared file system or a bucket
    (``s3://...``), with a local cache. Trains, validates, tests and predicts like
    ImageFolderDataModule: the same presets, transforms, data table and class names; evaluation
    (validation, test, predict) runs on the validation split.

    Under DDP each training sample is seen at most once per epoch across all processes; LitData
    leaves out the remainder that would make the processes' shares unequal (fewer than processes x
    batch size samples, plus at most a batch per worker: the tail of the epoch's last chunk). The
    order is shuffled with seed + epoch (chunks, and blocks within them: ``optimize`` writes the
    samples in a random order). The loader's position travels in the checkpoint, so
    ``--ckpt_path last`` continues an interrupted epoch.

    Args:
        input_dir: the optimized dataset: a folder, a shared-file-system path or an ``s3://`` URL.
        cache_dir: where chunks from a bucket are kept locally (default: LitData's, ~/.lightning/chunks);
            local and shared-file-system chunks are read in place.
        max_cache_size: the cache's budget, e.g. ``50GB``; chunks already read are evicted beyond it
            (default: LitData's, a share of the free disk).
        image_size: side of the square images the model receives; default: the architecture's input.
        channels: 1 (grey) or 3 (RGB); default: the architecture's.
        batch_size: samples per batch.
        num_workers: loader worker processes; ``auto``: one per CPU core but one, at most 8.
        pin_memory: pin batches in page-locked memory.
        persistent_workers: keep workers alive between epochs.
        seed: seed of the shuffling order and of the augmentation.
        train_transforms: preset (auto, light, cifar, digits, imagenet, googlenet, none) or a list of
            albumentations transforms, as for ImageFolderDataModule.
        eval_transforms: the same for validation/test.
        skip_bad: skip (and count) samples that cannot be read or decoded instead of stopping.
        mixup: timm Mixup alpha (0 = off).
        cutmix: timm CutMix alpha (0 = off).
        label_smoothing: label smoothing of the mixed targets.
        show_table: print the data table (stored by ``optimize``) in setup.
        max_pixels: images whose header declares more pixels are bad samples, never decoded.
    """

    def __init__(self, input_dir: str, cache_dir: str | None = None, max_cache_size: str | None = None,
                 image_size: int | None = None, channels: int | None = None, batch_size: int = 64,
                 num_workers: int | Literal["auto"] = "auto", pin_memory: bool = False,
                 persistent_workers: bool = False, seed: int = 0, train_transforms: Spec = "auto",
                 eval_transforms: Spec = None, skip_bad: bool = False, mixup: float = 0.0, cutmix: float = 0.0,
                 label_smoothing: float = 0.0, show_table: bool = True, max_pixels: int = MAX_PIXELS):
        super().__init__(batch_size, 0, pin_memory, persistent_workers, seed, train_transforms,
                         eval_transforms if eval_transforms is not None else "auto", mixup, cutmix, label_smoothing)
        image_size, channels = image_size or 224, channels or 3  # unset: the CLI fills in the net's input
        if channels not in (1, 3):
            raise DataError(f"channels must be 1 or 3, got {channels}")
        if max_pixels <= 0:
            raise DataError(f"max_pixels must be > 0, got {max_pixels}")
        self.input_dir, self.cache_dir, self.max_cache_size = str(input_dir).rstrip("/"), cache_dir, max_cache_size
        self.image_size, self.channels, self.max_pixels = image_size, channels, max_pixels
        self.workers_setting, self.persistent_setting = num_workers, persistent_workers
        self.skip_bad, self.show_table, self.skipped, self.skipped_files = skip_bad, show_table, 0, set()
        self.manifest = read_manifest(self.input_dir, cache_dir)
        self._classes = list(self.manifest["classes"])
        self.survey = survey_from_json(self.manifest["survey"])
        self.mean, self.std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,), (0.5,))
        self.save_hyperparameters()

    @property
    def num_classes(self) -> int:
        return len(self._classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    @property
    def class_names(self) -> list[str]:
        return list(self._classes)

    def split_dir(self, split: str) -> str:
        return f"{self.input_dir}/{split}"

    def setup(self, stage: str | None = None) -> None:
        if "://" not in self.input_dir:
            for split, count in self.manifest["splits"].items():
                if count:
                    check_chunks(Path(local_path(self.split_dir(split))))
        if self.show_table and (self.trainer is None or self.trainer.is_global_zero):
            print(table(self.survey, self.channels, self.image_size))
        seen = list(self.survey.size_range()) if self.survey.sizes else [(self.image_size, self.image_size)]
        check_pipeline(self.train_spec, self.image_size, True, seen, self.channels, "data.train_transforms")
        check_pipeline(self.eval_spec, self.image_size, False, seen, self.channels, "data.eval_transforms")

    def workers(self) -> int:
        if self.workers_setting != "auto":
            return int(self.workers_setting)
        return max(0, min(8, (os.cpu_count() or 1) - 1))

    def chunks(self, split: str, augment, train: bool) -> ChunkImages:
        """A split's StreamingDataset; made when a loader is, after the processes have started, since
        LitData reads the ranks and world size when it is made."""
        if not self.manifest["splits"].get(split):
            raise DataError(f"{self.input_dir}: no {split} samples (optimized with --val-fraction 0?)")
        cache = f"{self.cache_dir.rstrip('/')}/{split}" if self.cache_dir else None  # one cache per split
        return ChunkImages(self.split_dir(split), augment, self.channels, self.max_pixels, train,
                           cache_dir=cache, max_cache_size=self.max_cache_size, shuffle=train, seed=self.seed)

    def train_dataloader(self) -> StreamingDataLoader:
        """Shuffled per epoch, split across ranks and workers by LitData; its ``state_dict`` (saved in
        every checkpoint, pipeline/training/fault.py) resumes an interrupted epoch."""
        self.num_workers = self.workers()
        self.persistent_workers = self.persistent_setting and self.num_workers > 0
        dataset = self.chunks("train", pipeline(self.train_spec, self.image_size, True), train=True)
        return StreamingDataLoader(dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                                   pin_memory=self.pin_memory, persistent_workers=self.persistent_workers,
                                   collate_fn=collate)

    # -- evaluation: the validation split, every sample once, in order (ImageDataModule.eval_loader) ----
    def _eval_loader(self, predict: bool = False) -> DataLoader:
        self.num_workers = self.workers()
        self.persistent_workers = self.persistent_setting and self.num_workers > 0
        chunks = self.chunks("val", self.eval_transform(), train=False)
        chunks.labels_are_indices = predict
        return self.eval_loader(InOrder(chunks, self.manifest["splits"]["val"]),
                                partial(collate, stack=not self.eval_resize))

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader()

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader()

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader(predict=True)

    def test_split(self) -> str:
        return "val"

    def predict_names(self) -> list[str]:
        return list(self.manifest["val_names"])

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, torch.Tensor):  # the module's example input (Lightning's model summary)
            return batch
        images, targets, bad = batch
        report_bad(self, bad, f"rewrite {self.input_dir} with `pipeline data optimize` from the original folder")
        return super().on_after_batch_transfer((images, targets), dataloader_idx)


__all__ = ["ChunkImages", "StreamingDataModule", "check_chunks", "read_manifest"]
