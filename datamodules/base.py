"""What every datamodule shares: in-memory uint8 images, albumentations, loaders, class names."""
from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .transforms import Spec, pipeline


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

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return to_chw_uint8(self.transform(image=self.images[index])["image"]), int(self.labels[index])


class ImageDataModule(L.LightningDataModule):
    """Base of the datamodules: loaders, augmentation pipelines, Mixup/CutMix and class names.

    Subclasses fill ``self.splits`` in ``setup`` with ``{"train"|"val"|"test": (images, labels)}``
    (uint8 NHWC arrays) and define ``num_classes``, ``input_shape`` and ``class_names``.

    Loaders yield ``(images, targets)`` with uint8 NCHW images; once on the device (Lightning's
    ``on_after_batch_transfer``) they become float32, normalised with the dataset's statistics.
    Targets are int64 class indices, or, in training with ``mixup``/``cutmix`` > 0, soft targets of
    shape (N, num_classes) summing to one.
    """

    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)

    def __init__(self, batch_size: int = 64, num_workers: int = 0, pin_memory: bool = False,
                 persistent_workers: bool = False, seed: int = 0, train_transforms: Spec = None,
                 eval_transforms: Spec = None, mixup: float = 0.0, cutmix: float = 0.0,
                 label_smoothing: float = 0.0):
        super().__init__()
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.pin_memory, self.persistent_workers = pin_memory, persistent_workers and num_workers > 0
        self.train_spec, self.eval_spec = train_transforms, eval_transforms
        self.mixup_alpha, self.cutmix_alpha, self.label_smoothing = mixup, cutmix, label_smoothing
        self.splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._mix = None

    # -- what subclasses describe -------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        raise NotImplementedError

    @property
    def input_shape(self) -> tuple[int, int, int]:
        raise NotImplementedError

    @property
    def class_names(self) -> list[str]:
        return [str(i) for i in range(self.num_classes)]

    # -- loaders ----------------------------------------------------------------------------
    def dataset(self, split: str) -> ArrayDataset:
        images, labels = self.splits[split]
        size = self.input_shape[1]
        spec = self.train_spec if split == "train" else self.eval_spec
        return ArrayDataset(images, labels, pipeline(spec, size, split == "train"))

    def loader(self, split: str, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)  # seeded, reproducible order
        return DataLoader(self.dataset(split), batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, pin_memory=self.pin_memory,
                          persistent_workers=self.persistent_workers, generator=generator,
                          drop_last=shuffle and len(self.splits[split][0]) > self.batch_size)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test" if "test" in self.splits else "val", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    # -- Mixup / CutMix (timm's implementation), training batches only --------------------------
    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW -> float32, scaled to [0, 1] and standardised with the dataset's statistics."""
        if images.dtype != torch.uint8:
            return images
        shape = (1, -1, 1, 1)
        mean = torch.tensor(self.mean, device=images.device).view(shape)
        std = torch.tensor(self.std, device=images.device).view(shape)
        return (images.float() / 255.0 - mean) / std

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        images, targets = batch[0], batch[1]
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

    # -- class names travel in the checkpoint --------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"class_names": list(self.class_names)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.saved_class_names = list(state_dict.get("class_names", []))
