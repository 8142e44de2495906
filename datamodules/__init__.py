"""LightningDataModules and albumentations pipelines."""
from .base import ImageDataModule
from .digits import DigitsDataModule
from .errors import DataError
from .folder import ImageFolderDataModule, verify_image_folder
from .standard import CIFAR10DataModule, CIFAR100DataModule, FashionMNISTDataModule, MNISTDataModule
from .signals import SequentialDigitsDataModule, SignalArrayDataModule, SignalFolderDataModule
from .synthetic import SyntheticDataModule

__all__ = ["CIFAR100DataModule", "CIFAR10DataModule", "DataError", "DigitsDataModule", "FashionMNISTDataModule",
           "ImageDataModule", "ImageFolderDataModule", "MNISTDataModule", "SequentialDigitsDataModule",
           "SignalArrayDataModule", "SignalFolderDataModule", "SyntheticDataModule",
           "verify_image_folder"]
