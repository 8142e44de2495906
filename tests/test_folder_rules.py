"""How the image folder module reads a folder: which folders are classes and splits, which files are
samples (torchvision ImageFolder's rule), and what it says about the rest."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules import DataError, ImageFolderDataModule
from datamodules.survey import table


def png(path: Path, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 10), (value,) * 3).save(path)
    return path


def images(root: Path, classes: dict[str, int]) -> Path:
    for name, count in classes.items():
        for i in range(count):
            png(root / name / f"{i}.png", 40 + 10 * i)
    return root


def module(root: Path, **kwargs) -> ImageFolderDataModule:
    return ImageFolderDataModule(str(root), image_size=8, show_table=False, cache_bytes=0, **kwargs)


def test_val_class_folders_that_are_no_training_class_are_an_error_with_a_hint(tmp_path):
    images(tmp_path / "train", {"a": 3, "b": 3})
    images(tmp_path / "val", {"a": 1, "B": 1, "c": 1})
    with pytest.raises(DataError) as err:
        module(tmp_path)
    text = str(err.value)
    assert len(text.splitlines()) == 1 and text.startswith(str(tmp_path / "val"))
    assert "'B' (did you mean 'b'?), 'c'" in text


def test_a_training_class_with_no_val_images_is_a_table_warning(tmp_path):
    images(tmp_path / "train", {"a": 3, "b": 3, "c": 3})
    images(tmp_path / "val", {"a": 1, "b": 1})
    dm = module(tmp_path)
    dm.setup("fit")
    assert "warning: training classes with no validation images: c" in table(dm.survey, 3, 8)


def test_train_without_val_is_split_by_val_fraction_and_other_folders_are_named(tmp_path):
    images(tmp_path / "train", {"a": 10, "b": 10})
    images(tmp_path / "test", {"x": 2})  # Kaggle's layout: unlabelled test images
    one, two = module(tmp_path, val_fraction=0.25, seed=3), module(tmp_path, val_fraction=0.25, seed=3)
    one.setup("fit"), two.setup("fit")
    assert len(one.items["val"]) == 5 and len(one.items["train"]) == 15 and one.items["val"] == two.items["val"]
    text = table(one.survey, 3, 8)
    assert f"warning: no {tmp_path / 'val'}: validation is a seeded val_fraction=0.25 of train/ (5 images)" in text
    assert f"warning: ignored folder(s) in {tmp_path} (neither train/ nor val/): test" in text
