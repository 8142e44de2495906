"""Datamodules on data the tests make: standard on-disk formats, image folders, bad files, augmentation."""
from __future__ import annotations

import pickle
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from datamodules import (CIFAR10DataModule, CIFAR100DataModule, DataError, DigitsDataModule, FashionMNISTDataModule,
                         ImageFolderDataModule, MNISTDataModule, SyntheticDataModule, verify_image_folder)
from datamodules.transforms import pipeline
from pipeline.training import ClassifierModule

from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# fixtures: local copies in the formats the loaders read


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def mnist_root(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    write_idx(raw / "train-images-idx3-ubyte", rng.integers(0, 255, (50, 28, 28)))
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(50) % 10)
    write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 255, (20, 28, 28)))
    write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(20) % 10)
    return tmp_path


def write_cifar(root: Path, folder: str, files: list[str], label_key: str, classes: int) -> None:
    (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in files:
        batch = {"data": rng.integers(0, 255, (12, 3072), dtype=np.uint8), label_key: list(np.arange(12) % classes)}
        (root / folder / name).write_bytes(pickle.dumps(batch))


def png(path: Path, mode: str = "RGB", size=(20, 16), value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        Image.fromarray(np.full(size[::-1], value * 256, np.uint16)).save(path)
    elif mode == "P":
        Image.new("RGB", size, (value, 0, 0)).convert("P").save(path)
    else:
        Image.new(mode, size, value if mode in ("L",) else (value,) * len(mode)).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "imgs"
    for split, count in (("train", 6), ("val", 2)):
        for c, name in enumerate(("cat", "dog", "fox")):
            for i in range(count):
                png(root / split / name / f"{i}.png", value=40 + 60 * c)
    return root


# ---------------------------------------------------------------------------------------------
# standard datasets


def test_digits_split_is_fixed_and_stratified():
    a, b = DigitsDataModule(seed=3), DigitsDataModule(seed=3)
    a.setup("fit"), b.setup("fit")
    assert np.array_equal(a.splits["val"][1], b.splits["val"][1])
    assert len(a.splits["train"][0]) + len(a.splits["val"][0]) == 1797
    assert a.input_shape == (1, 16, 16) and a.num_classes == 10
    x, y = next(iter(a.val_dataloader()))
    assert x.shape == (64, 1, 16, 16) and x.dtype == torch.uint8 and y.dtype == torch.int64  # uint8 until the device
    z, y2 = a.on_after_batch_transfer((x, y), 0)
    assert z.dtype == torch.float32 and torch.equal(y2, y)
    assert torch.allclose(z, (x.float() / 255 - 0.3) / 0.4)


def test_mnist_and_fashion_read_a_local_copy(mnist_root):
    dm = MNISTDataModule(root=str(mnist_root), download=False, batch_size=8)
    dm.prepare_data(), dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 1, 28, 28) and dm.num_classes == 10
    assert len(dm.splits["val"][0]) == 20  # the official test split validates by default
    (mnist_root / "FashionMNIST").mkdir()
    (mnist_root / "MNIST" / "raw").rename(mnist_root / "FashionMNIST" / "raw")
    fashion = FashionMNISTDataModule(root=str(mnist_root), download=False, val_fraction=0.2)
    fashion.setup("fit")
    assert len(fashion.splits["val"][0]) == 10 and fashion.class_names[9] == "Ankle boot"


def test_missing_local_copy_is_a_clear_error(tmp_path):
    dm = CIFAR10DataModule(root=str(tmp_path), download=False)
    dm.prepare_data()
    with pytest.raises(DataError, match=r"cifar-10-batches-py: missing data_batch_1, .*test_batch \(download is off\)"):
        dm.setup("fit")


@pytest.mark.parametrize("module, folder, files, key, classes", [
    (CIFAR10DataModule, "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], "labels", 10),
    (CIFAR100DataModule, "cifar-100-python", ["train", "test"], "fine_labels", 100),
])
def test_cifar_reads_python_batches(tmp_path, module, folder, files, key, classes):
    write_cifar(tmp_path, folder, files, key, classes)
    dm = module(root=str(tmp_path), download=False, batch_size=4)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 32, 32) and dm.num_classes == classes
    assert len(dm.splits["train"][0]) == 12 * (len(files) - 1)


def test_cifar_batches_cannot_smuggle_code(tmp_path):
    write_cifar(tmp_path, "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], "labels", 10)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({"data": Evil()}))
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        CIFAR10DataModule(root=str(tmp_path), download=False).setup("fit")


# ---------------------------------------------------------------------------------------------
# image folders


def test_image_folder_with_train_val_layout(folder):
    dm = ImageFolderDataModule(str(folder), image_size=12, batch_size=4, train_transforms="none", eval_transforms="none")
    assert dm.class_names == ["cat", "dog", "fox"] and dm.num_classes == 3  # known before setup
    dm.setup("fit")
    assert len(dm.items["train"]) == 18 and len(dm.items["val"]) == 6
    x, y, bad = next(iter(dm.val_dataloader()))
    assert x.shape == (4, 3, 12, 12) and y.tolist() == [0, 0, 1, 1] and bad == []
    assert dm.state_dict() == {"class_names": ["cat", "dog", "fox"]}  # saved in checkpoints


def test_single_folder_is_split_by_a_seeded_fraction(tmp_path):
    for c in ("a", "b"):
        for i in range(10):
            png(tmp_path / c / f"{i}.png")
    one, two = (ImageFolderDataModule(str(tmp_path), val_fraction=0.25, seed=1) for _ in range(2))
    one.setup(), two.setup()
    assert len(one.items["val"]) == 5 and one.items["val"] == two.items["val"]


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16", "CMYK"])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_image_mode_becomes_the_declared_channels(tmp_path, mode, channels):
    suffix = ".jpg" if mode == "CMYK" else ".png"
    png(tmp_path / "a" / f"x{suffix}", mode=mode)
    png(tmp_path / "b" / "y.png")
    dm = ImageFolderDataModule(str(tmp_path), channels=channels, image_size=8, val_fraction=0.0,
                               train_transforms="none", batch_size=2)
    dm.setup()
    x, _ = next(iter(dm.train_dataloader()))[:2]
    assert x.shape == (2, channels, 8, 8) and torch.isfinite(x).all()


@pytest.fixture
def bad_folder(tmp_path):
    root = tmp_path / "bad"
    for c in ("a", "b"):
        for i in range(4):
            png(root / c / f"{i}.png", value=50 + 100 * (c == "b"))
    good = png(tmp_path / "src.png", size=(64, 64))
    data = good.read_bytes()
    (root / "a" / "truncated.png").write_bytes(data[: len(data) // 2])
    Image.new("RGB", (64, 64), (10, 200, 30)).save(tmp_path / "src.jpg", quality=90)
    jpg = (tmp_path / "src.jpg").read_bytes()
    (root / "b" / "truncated.jpg").write_bytes(jpg[: len(jpg) // 2])
    (root / "a" / "zero.png").write_bytes(b"")
    (root / "b" / "notes.jpg").write_text("this is not an image")
    (root / "empty_class").mkdir()
    return root


def test_verify_reports_every_offending_path(bad_folder):
    problems = dict(verify_image_folder(bad_folder))
    assert set(problems) == {str(bad_folder / p) for p in ("a/truncated.png", "b/truncated.jpg", "a/zero.png",
                                                           "b/notes.jpg", "empty_class")}
    assert problems[str(bad_folder / "a/zero.png")] == "empty file (0 bytes)"
    assert problems[str(bad_folder / "empty_class")] == "empty class folder"
    dm = ImageFolderDataModule(str(bad_folder), verify=True)
    with pytest.raises(DataError) as err:
        dm.setup()
    lines = str(err.value).splitlines()
    assert lines[0].startswith("5 bad file(s)") and all(l.startswith(str(bad_folder)) for l in lines[1:])


def tiny_model(tmp_path) -> ClassifierModule:
    arch = tmp_path / "tiny.yaml"
    arch.write_text("input: [3, 8, 8]\nvars: {classes: 3}\nnodes:\n  c: {block: conv, out: 4}\n  p: global_pool\n"
                    "  fc: {block: linear, out: classes}\n")
    return ClassifierModule(str(arch), num_classes=3, input_shape=(3, 8, 8))


@pytest.mark.parametrize("workers", [0, 2])
def test_bad_files_during_training_stop_with_the_path_or_are_skipped(bad_folder, tmp_path, workers):
    (bad_folder / "empty_class").rmdir()  # refused before training unless skip_bad (tests/test_reliability.py)
    common = dict(image_size=8, val_fraction=0.0, batch_size=4, num_workers=workers, train_transforms="none",
                  cache_bytes=0)
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        limit_val_batches=0)
    with pytest.raises(DataError, match=r"bad/[ab]/.*: cannot decode image"):
        trainer.fit(tiny_model(tmp_path), ImageFolderDataModule(str(bad_folder), skip_bad=False, **common))
    dm = ImageFolderDataModule(str(bad_folder), skip_bad=True, **common)
    L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              limit_val_batches=0).fit(tiny_model(tmp_path), dm)
    assert dm.skipped == 4  # truncated png and jpg, zero-byte, text file: each once, not once per epoch


# ---------------------------------------------------------------------------------------------
# augmentation


@pytest.mark.parametrize("preset", ["cifar", "imagenet", "googlenet", "none", "digits", "auto", "light"])
@pytest.mark.parametrize("train", [True, False])
def test_presets_produce_the_declared_shape_and_dtype(preset, train):
    image = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    size = 32 if preset == "cifar" else 24
    out = pipeline(preset, size, train)(image=image)["image"]
    assert out.shape == (size, size, 3)  # every preset ends at the declared size
    assert out.dtype == np.uint8


def test_explicit_transform_lists_and_unknown_names():
    out = pipeline([{"name": "Resize", "height": 10, "width": 12}, {"name": "HorizontalFlip", "p": 1.0}], 0, True)
    assert out(image=np.zeros((20, 20, 3), np.uint8))["image"].shape == (10, 12, 3)
    with pytest.raises(DataError, match="unknown albumentations transform 'HorizontalFlips'.*HorizontalFlip"):
        pipeline([{"name": "HorizontalFlips"}], 8, True)


@pytest.mark.parametrize("mixup, cutmix", [(0.8, 0.0), (0.0, 1.0), (0.8, 1.0)])
def test_mixup_and_cutmix_targets_sum_to_one(mixup, cutmix):
    dm = SyntheticDataModule(num_classes=5, batch_size=8)
    dm.mixup_alpha, dm.cutmix_alpha, dm.label_smoothing = mixup, cutmix, 0.1

    class Training:
        training = True

    dm.trainer = Training()
    images, targets = dm.on_after_batch_transfer((torch.randn(8, 3, 32, 32), torch.randint(0, 5, (8,))), 0)
    assert targets.shape == (8, 5) and torch.allclose(targets.sum(1), torch.ones(8))
    assert images.shape == (8, 3, 32, 32)


def test_fit_through_the_cli_on_an_image_folder(folder, tmp_path):
    arch = tmp_path / "net.yaml"
    arch.write_text("input: [3, 16, 16]\nvars: {classes: 10}\nnodes:\n  c: {block: conv, out: 8}\n  p: global_pool\n"
                    "  fc: {block: linear, out: classes}\n")
    command = "python -m pipeline fit --config lightning_config.yaml --data datamodules.ImageFolderDataModule --data.root my_images --model.arch architectures/resnet18.yaml --trainer.default_root_dir runs/my_images"  # noqa: E501  (README)
    args = command.replace("my_images", str(folder)).split()[3:]
    # the README's command, on a tiny net and images so that it runs in seconds
    proc = run_cli(*args, "--model.arch", str(arch), "--data.image_size", "16", "--data.batch_size", "4",
                   "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(tmp_path / "run"),
                   "--trainer.enable_progress_bar", "false")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = torch.load(tmp_path / "run" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["ImageFolderDataModule"]["class_names"] == ["cat", "dog", "fox"]


def test_verify_flag_through_the_cli_lists_bad_files_and_exits_2(bad_folder, tmp_path):
    proc = run_cli("fit", "--config", "lightning_config.yaml", "--data", "datamodules.ImageFolderDataModule",
                   "--data.root", str(bad_folder), "--data.verify", "true", "--trainer.default_root_dir",
                   str(tmp_path / "run"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()[-6:]  # after Lightning's own start-up lines
    assert lines[0].startswith("5 bad file(s)")
    assert any(l.startswith(str(bad_folder / "a" / "zero.png")) for l in lines)


def test_a_sample_is_augmented_by_its_seed_and_a_fixed_pipeline_is_not_seeded():
    """Every training sample's augmentation depends on (seed, epoch, index) only; pipelines that draw nothing
    (resize, crop, normalise) skip the seeding, and a choice among fixed transforms still draws."""
    import albumentations as A
    import numpy as np

    from datamodules.sampling import draws_at_random, seed_sample
    from datamodules.transforms import pipeline

    augment = pipeline("digits", 16, True)
    image = (np.arange(256).reshape(16, 16, 1) * 7 % 251).astype(np.uint8)

    def sample(index):
        seed_sample(index, augment)
        return augment(image=image)["image"]

    first = sample((5, 0, 3))
    assert not np.array_equal(first, sample((6, 0, 3))) and not np.array_equal(first, sample((5, 0, 4)))
    assert np.array_equal(first, sample((5, 0, 3)))  # the same sample again, after others
    assert draws_at_random(augment) and not draws_at_random(pipeline("none", 16, True))
    assert not draws_at_random(A.Compose([A.Resize(8, 8), A.CenterCrop(4, 4), A.Normalize()]))
    assert draws_at_random(A.Compose([A.OneOf([A.Resize(8, 8), A.Resize(9, 9)], p=1.0)]))
    assert draws_at_random(A.Compose([A.Resize(8, 8, p=0.5)])) and draws_at_random(lambda image: image)
