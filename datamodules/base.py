"""What every datamodule shares (splits, seeded loaders, class names: ClassificationDataModule) and what
every image one adds (in-memory uint8 images, albumentations, normalisation, Mixup: ImageDataModule)."""
from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .errors import DataError
from .sampling import seed_sample, train_loader
from .transforms import Spec, pipeline, shorter_side


def to_chw_uint8(image: np.ndarray) -> torch.Tensor:
    """HWC uint8 (or HW) -> CHW uint8 tensor. Batches stay uint8 until they reach the device: a
    quarter of the bytes through the worker queues, and normalisation runs there (on the GPU)."""
    if image.ndim == 2:  # albumentations drops a single channel axis in some transforms
        image = image[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class ArrayDataset(Dataset):
    """Images held as one uint8 array (N, H, W, C); augmented and made CHW per item."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels.astype(np.int64), transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int | tuple[int, int, int]) -> tuple[torch.Tensor, int]:
        index = seed_sample(index, self.transform)  # training indices carry their augmentation seed
        return to_chw_uint8(self.transform(image=self.images[index])["image"]), int(self.labels[index])


class IndexedDataset(Dataset):
    """Predict: a dataset's images with their index instead of the label, so every prediction can be
    matched to its file even when processes or bad files change what a batch holds."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.dataset[index][0], index


def collate_unstacked(samples: list[tuple[torch.Tensor, int]]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Whole images of different sizes (multi-crop evaluation): a list, not one stacked tensor."""
    return [x for x, _ in samples], torch.tensor([y for _, y in samples], dtype=torch.int64)


class ClassificationDataModule(L.LightningDataModule):
    """Base of every datamodule, images and 1-D signals: labelled samples in splits, seeded loaders
    (training resumable mid-epoch, evaluation every sample once) and class names in the checkpoint.

    Subclasses fill ``self.splits`` in ``setup`` with ``{"train"|"val"|"test": (samples, labels)}``,
    make a split's dataset in ``dataset`` and define ``num_classes``, ``input_shape`` and ``class_names``.
    Predict batches hold sample indices (see ``predict_names``) instead of targets.
    """

    def __init__(self, batch_size: int = 64, num_workers: int = 0, pin_memory: bool = False,
                 persistent_workers: bool = False, seed: int = 0):
        super().__init__()
        # checked here, before any data is read: DataLoader would say it only after setup
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise DataError(f"data.batch_size: expected a positive number of samples per batch, got {batch_size}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise DataError(f"data.num_workers: expected 0 or more worker processes, got {num_workers}")
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.pin_memory, self.persistent_workers = pin_memory, persistent_workers and num_workers > 0
        self.splits: dict[str, tuple[Any, np.ndarray]] = {}

    # -- what subclasses describe -------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        raise NotImplementedError

    @property
    def input_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def class_names(self) -> list[str]:
        return [str(i) for i in range(self.num_classes)]

    def dataset(self, split: str) -> Dataset:
        raise NotImplementedError

    # -- loaders ----------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        """Shuffled, split across ranks and resumable mid-epoch (datamodules/sampling.py); evaluation
        loaders are ``eval_loader``'s."""
        return train_loader(self.dataset("train"), self.batch_size, self.seed, num_workers=self.num_workers,
                            pin_memory=self.pin_memory, persistent_workers=self.persistent_workers,
                            generator=torch.Generator().manual_seed(self.seed))

    def val_dataloader(self) -> DataLoader:
        return self.eval_loader(self.dataset("val"))

    def test_dataloader(self) -> DataLoader:
        return self.eval_loader(self.dataset(self.test_split()))

    def predict_dataloader(self) -> DataLoader:
        return self.eval_loader(IndexedDataset(self.dataset(self.test_split())))

    def predict_names(self) -> list[str]:
        """What predict's rows are called, in the predict loader's index order."""
        split = self.test_split()
        return [f"{split}[{i}]" for i in range(len(self.splits[split][0]))]

    # -- evaluation: validation, test, predict -------------------------------------------------
    # multi-crop (or windowed) evaluation (pipeline/evaluation) sets this: eval loaders then yield whole
    # samples as lists (images with the shorter side resized to it), and the crops are cut on the device
    eval_resize: int | None = None

    def test_split(self) -> str:
        return "test" if "test" in self.splits else "val"

    def eval_loader(self, dataset: Dataset, collate_fn=None, **loader_args: Any) -> DataLoader:
        """In order, every sample exactly once. Under DDP each process takes every W-th sample
        (Lightning's UnrepeatedDistributedSampler: shares differ by at most one, nothing is padded or
        dropped), so metrics summed across processes are those of a single process."""
        shares = self.trainer.distributed_sampler_kwargs if self.trainer is not None else None
        sampler = None
        if shares and shares.get("num_replicas", 1) > 1:
            from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

            sampler = UnrepeatedDistributedSampler(dataset, num_replicas=shares["num_replicas"], rank=shares["rank"],
                                                   shuffle=False)
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          pin_memory=self.pin_memory, persistent_workers=self.persistent_workers,
                          collate_fn=collate_fn or (collate_unstacked if self.eval_resize else None), **loader_args)

    # -- class names travel in the checkpoint (read back by pipeline/checkpoints.py) ---------------
    def state_dict(self) -> dict[str, Any]:
        return {"class_names": list(self.class_names)}


class ImageDataModule(ClassificationDataModule):
    """Base of the image datamodules: albumentations pipelines, normalisation and Mixup/CutMix.

    Subclasses fill ``self.splits`` in ``setup`` with ``{"train"|"val"|"test": (images, labels)}``
    (uint8 NHWC arrays) and define ``num_classes``, ``input_shape`` and ``class_names``.

    Loaders yield ``(images, targets)`` with uint8 NCHW images; once on the device (Lightning's
    ``on_after_batch_transfer``) they become float32, normalised with the dataset's statistics.
    For multi-crop evaluation (``eval_resize`` set) eval batches hold a list of whole CHW images
    instead; predict batches hold sample indices (see ``predict_names``) instead of targets.
    Targets are int64 class indices, or, in training with ``mixup``/``cutmix`` > 0, soft targets of
    shape (N, num_classes) summing to one.
    """

    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)

    def __init__(self, batch_size: int = 64, num_workers: int = 0, pin_memory: bool = False,
                 persistent_workers: bool = False, seed: int = 0, train_transforms: Spec = None,
                 eval_transforms: Spec = None, mixup: float = 0.0, cutmix: float = 0.0,
                 label_smoothing: float = 0.0):
        super().__init__(batch_size, num_workers, pin_memory, persistent_workers, seed)
        self.train_spec, self.eval_spec = train_transforms, eval_transforms
        self.mixup_alpha, self.cutmix_alpha, self.label_smoothing = mixup, cutmix, label_smoothing
        self._mix = None

    def dataset(self, split: str) -> ArrayDataset:
        images, labels = self.splits[split]
        size = self.input_shape[1]
        transform = pipeline(self.train_spec, size, True) if split == "train" else self.eval_transform()
        return ArrayDataset(images, labels, transform)

    def eval_transform(self):
        if self.eval_resize:
            return shorter_side(self.eval_resize)
        return pipeline(self.eval_spec, self.input_shape[1], False)

    # -- normalisation on the device; Mixup / CutMix (timm's implementation), training batches only --
    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW -> float32, scaled to [0, 1] and standardised with the dataset's statistics."""
        if images.dtype != torch.uint8:
            return images
        shape = (1, -1, 1, 1)
        mean = torch.tensor(self.mean, device=images.device).view(shape)
        std = torch.tensor(self.std, device=images.device).view(shape)
        return (images.float() / 255.0 - mean) / std

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, torch.Tensor):  # the module's example input (Lightning's model summary)
            return batch
        images, targets = batch[0], batch[1]
        if isinstance(images, list):  # whole images of different sizes, for multi-crop evaluation
            return [self.normalize(x[None])[0] for x in images], targets
        batch = (self.normalize(images), targets)
        if not (self.trainer and self.trainer.training) or not (self.mixup_alpha or self.cutmix_alpha):
            return batch
        if self._mix is None:
            from timm.data import Mixup

            self._mix = Mixup(mixup_alpha=self.mixup_alpha, cutmix_alpha=self.cutmix_alpha,
                              label_smoothing=self.label_smoothing, num_classes=self.num_classes)
        images, targets = batch
        if len(images) % 2:  # timm mixes pairs within a batch
            images, targets = images[:-1], targets[:-1]
        return self._mix(images, targets)
