"""LightningDataModules and albumentations pipelines."""
from .base import ClassificationDataModule, ImageDataModule
from .digits import DigitsDataModule
from .errors import DataError
from .folder import ImageFolderDataModule, verify_image_folder
from .standard import CIFAR10DataModule, CIFAR100DataModule, FashionMNISTDataModule, MNISTDataModule
from .signals import SequentialDigitsDataModule, SignalArrayDataModule
from .wav import SignalFolderDataModule
from .synthetic import SyntheticDataModule

__all__ = ["CIFAR100DataModule", "CIFAR10DataModule", "ClassificationDataModule", "DataError", "DigitsDataModule",
           "FashionMNISTDataModule", "ImageDataModule", "ImageFolderDataModule", "MNISTDataModule",
           "SequentialDigitsDataModule", "SignalArrayDataModule", "SignalFolderDataModule", "SyntheticDataModule",
           "StreamingDataModule", "verify_image_folder"]


def __getattr__(name: str):
    # LitData (half a second to import) only for those who stream: `datamodules.StreamingDataModule`
    if name == "StreamingDataModule":
        from .streaming import StreamingDataModule

        return StreamingDataModule
    raise AttributeError(f"module 'datamodules' has no attribute '{name}'")
