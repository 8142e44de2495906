"""LightningDataModules and albumentations pipelines."""
from .base import ImageDataModule
from .digits import DigitsDataModule
from .errors import DataError
from .synthetic import SyntheticDataModule

__all__ = ["DataError", "DigitsDataModule", "ImageDataModule", "SyntheticDataModule"]
