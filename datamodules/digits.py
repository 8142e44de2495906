"""scikit-learn's bundled handwritten digits: 1,797 real 8x8 images, no download needed."""
from __future__ import annotations

import cv2
import numpy as np

from .base import ImageDataModule
from .transforms import Spec


class DigitsDataModule(ImageDataModule):
    """The UCI handwritten digits (scikit-learn's ``load_digits``), upscaled and split once.

    Args:
        batch_size: samples per batch.
        val_fraction: share of the images held out for validation (and test), stratified.
        image_size: side the 8x8 images are resized to (once, when loaded); default: the
            architecture's declared input (through the CLI; 16 from Python).
        num_workers: loader worker processes (0 = in the main process; the data is in memory).
        pin_memory: pin batches in page-locked memory (faster host-to-GPU copies).
        persistent_workers: keep workers alive between epochs.
        seed: seed of the split and of the shuffling order.
        train_transforms: augmentation preset name or list of albumentations transforms.
        eval_transforms: the same for validation/test (default: none).
        mixup: timm Mixup alpha (0 = off).
        cutmix: timm CutMix alpha (0 = off).
        label_smoothing: label smoothing of the mixed targets.
    """

    mean = (0.3,)  # of the 0..1 scaled images
    std = (0.4,)

    def __init__(self, batch_size: int = 64, val_fraction: float = 0.2, image_size: int | None = None,
                 num_workers: int = 0, pin_memory: bool = False, persistent_workers: bool = False, seed: int = 0,
                 train_transforms: Spec = "digits", eval_transforms: Spec = None, mixup: float = 0.0,
                 cutmix: float = 0.0, label_smoothing: float = 0.0):
        super().__init__(batch_size, num_workers, pin_memory, persistent_workers, seed, train_transforms,
                         eval_transforms, mixup, cutmix, label_smoothing)
        if not 0.0 < val_fraction < 1.0:
            from .errors import DataError

            raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.val_fraction, self.image_size = val_fraction, image_size or 16  # unset: the CLI fills it in
        self.save_hyperparameters()

    @property
    def num_classes(self) -> int:
        return 10

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (1, self.image_size, self.image_size)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = (digits.images * (255.0 / 16.0)).astype(np.uint8)  # 17 grey levels -> uint8
        images = np.stack([cv2.resize(im, (self.image_size,) * 2, interpolation=cv2.INTER_LINEAR)
                           for im in images])[..., None]
        train_x, val_x, train_y, val_y = train_test_split(images, digits.target, test_size=self.val_fraction,
                                                          random_state=self.seed, stratify=digits.target)
        self.splits = {"train": (train_x, train_y), "val": (val_x, val_y)}
