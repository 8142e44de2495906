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


def test_only_files_with_an_image_extension_are_samples_everywhere_and_the_rest_are_counted(tmp_path):
    from datamodules import verify_image_folder

    root = images(tmp_path / "data", {"a": 3, "b": 3, "c": 0})
    for junk in ("a/Thumbs.db", "a/desktop.ini", "b/notes.txt"):
        (root / junk).write_text("not an image")
    (root / "b" / "noext").write_bytes((root / "b" / "0.png").read_bytes())  # a PNG without extension
    (root / "c").mkdir()
    (root / "c" / "Thumbs.db").write_text("x")  # a class of junk only: an empty class folder
    assert verify_image_folder(root) == [(str(root / "c"), "empty class folder")]
    with pytest.raises(DataError, match=r"data/c: empty class folder"):
        module(root)
    (root / "c" / "Thumbs.db").unlink(), (root / "c").rmdir()
    dm = module(root, val_fraction=0.0, verify=True)
    dm.setup("fit")
    assert sorted(p.name for p, _ in dm.items["train"]) == ["0.png", "0.png", "1.png", "1.png", "2.png", "2.png"]
    assert "warning: ignored 4 non-image file(s) (e.g. a/Thumbs.db)" in table(dm.survey, 3, 8)
    new = images(tmp_path / "new", {"x": 2})
    (new / "x" / "Thumbs.db").write_text("x")
    dm = module(root, val_fraction=0.0, predict_root=str(new))
    dm.setup("predict")
    assert len(dm.items["predict"]) == 2 and "ignored 1 non-image file(s) (e.g. x/Thumbs.db)" in table(dm.survey, 3, 8)


def test_hidden_folders_and_macos_debris_below_a_class_are_not_read(tmp_path):
    from datamodules import verify_image_folder

    root = images(tmp_path / "data", {"a": 2, "b": 2})
    png(root / "a" / ".ipynb_checkpoints" / "0-checkpoint.png")
    png(root / "a" / "__MACOSX" / "._0.png")
    png(root / "__MACOSX" / "a" / "._0.png")  # not a class
    png(root / "b" / "@eaDir" / "0.png" / "SYNOPHOTO_THUMB_S.jpg")  # a Synology NAS's thumbnails
    (root / "b" / ".cache").mkdir()
    (root / "b" / ".cache" / "broken.png").write_bytes(b"junk")
    dm = module(root, val_fraction=0.0)
    assert dm.class_names == ["a", "b"]
    dm.setup("fit")
    assert [str(p.relative_to(root)) for p, _ in dm.items["train"]] == ["a/0.png", "a/1.png", "b/0.png", "b/1.png"]
    assert verify_image_folder(root) == []


def test_verify_also_lists_the_bad_files_under_predict_root(tmp_path):
    root = images(tmp_path / "data", {"a": 2, "b": 2})
    new = images(tmp_path / "new", {"x": 2})
    (new / "x" / "broken.png").write_bytes(b"junk")
    dm = module(root, val_fraction=0.0, predict_root=str(new), verify=True)
    with pytest.raises(DataError) as err:
        dm.setup("predict")
    assert str(err.value).splitlines()[1:] == [f"{new / 'x' / 'broken.png'}: not an image (cannot identify the format)"]


@pytest.mark.parametrize("array, words", [(np.full((6, 6), 0.5, np.float32), "32-bit float pixels"),
                                          (np.full((6, 6), 70000, np.int32), "32-bit integer pixels")])
def test_32_bit_tiffs_are_bad_files_with_the_reason(tmp_path, array, words):
    from datamodules.decode import BadImage, decode

    Image.fromarray(array).save(tmp_path / "x.tif")
    with pytest.raises(BadImage, match=f"x.tif: {words} are not supported: convert to 8 or 16 bit"):
        decode(tmp_path / "x.tif", 3)
    Image.fromarray(np.full((6, 6), 1000, np.uint16)).save(tmp_path / "g16.pgm")  # 16-bit PGM opens as mode I
    assert decode(tmp_path / "g16.pgm", 1).max() == 1000 >> 8


def test_a_truncated_image_is_reported_as_one_phrase(tmp_path):
    from datamodules.folder import FolderDataset

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(tmp_path / "src.png")
    data = (tmp_path / "src.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "e.png").write_bytes(b"")
    dataset = FolderDataset([(tmp_path / "t.png", 0), (tmp_path / "e.png", 0)], lambda image: {"image": image}, 3)
    assert dataset[0][2].startswith(f"{tmp_path / 't.png'}: cannot decode image (OSError: ")
    assert dataset[1][2] == f"{tmp_path / 'e.png'}: cannot decode image (empty file (0 bytes))"


def test_linked_sub_folders_are_followed_like_linked_classes_and_a_link_loop_ends(tmp_path):
    from datamodules.folder import image_files

    images(tmp_path / "data", {"a": 2, "b": 2})
    extra = images(tmp_path / "elsewhere", {"more": 3}) / "more"
    (tmp_path / "data" / "a" / "batch2").symlink_to(extra, target_is_directory=True)
    (tmp_path / "data" / "a" / "loop").symlink_to(tmp_path / "data" / "a", target_is_directory=True)
    (tmp_path / "data" / "b" / "gone.png").symlink_to(tmp_path / "nowhere.png")  # a broken link: no file
    found, others = image_files(tmp_path / "data" / "a")
    assert [p.relative_to(tmp_path / "data" / "a").as_posix() for p in found] == \
        ["0.png", "1.png", "batch2/0.png", "batch2/1.png", "batch2/2.png"]
    assert image_files(tmp_path / "data" / "b") == (sorted((tmp_path / "data" / "b").glob("[01].png")), [])
