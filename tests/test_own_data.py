"""Your own images (issue 17): the data follows the net, augmentation fits the size and is checked
before training, the data table, class balancing, the in-memory fast path, and lr-find."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules import DataError, ImageFolderDataModule
from datamodules.balance import BalancedSampler
from datamodules.memory import TensorSplit, shift_batch, shifts
from datamodules.survey import table
from datamodules.transforms import check_pipeline, pipeline
from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from digit_folder import make_digit_folder  # noqa: E402

README_FIT = "python -m pipeline fit --config lightning_config.yaml --data datamodules.ImageFolderDataModule --data.root my_digits --model.arch architectures/lenet5.yaml"  # noqa: E501  (README)
README_LR_FIND = "python -m pipeline lr-find --config lightning_config.yaml --lr_find.plot runs/lr_find.png"
QUICK = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
         "--trainer.enable_progress_bar", "false", "--data.batch_size", "16", "--data.num_workers", "0"]


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> Path:
    """28x28 grey digit PNGs in train/<digit> and val/<digit>, 8 and 3 per class: a user's folder, tiny."""
    return make_digit_folder(tmp_path_factory.mktemp("own") / "my_digits", train=80, val=30, size=28)


def fit(monkeypatch, args: list[str]) -> int:
    monkeypatch.chdir(ROOT)
    return main(args)


def readme_args(command: str, root: Path, run: Path) -> list[str]:
    return [a.replace("my_digits", str(root)) for a in shlex.split(command)[3:]] + [
        "--trainer.default_root_dir", str(run)]


# ---------------------------------------------------------------------------------------------
# the data follows the net


@pytest.mark.slow
def test_readme_command_trains_lenet5_at_its_declared_input(digits, tmp_path, monkeypatch, capsys):
    rc = fit(monkeypatch, readme_args(README_FIT, digits, tmp_path / "run") + QUICK)
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-2000:]
    data = torch.load(tmp_path / "run" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)["datamodule_hyper_parameters"]
    # 1x32x32 from the file; the digits config's val_fraction 0.2 did not leak into the folder module
    assert (data["channels"], data["image_size"], data["val_fraction"]) == (1, 32, 0.1)
    assert data["batch_size"] == 16  # the command line still wins
    assert "declared" not in captured.err  # nothing adapted, nothing said
    assert "10 classes" in captured.out and "min 28x28, median 28x28, max 28x28" in captured.out


@pytest.mark.slow
def test_a_size_the_user_asks_for_adapts_the_net_and_says_so_in_one_line(digits, tmp_path, monkeypatch, capsys):
    rc = fit(monkeypatch, readme_args(README_FIT, digits, tmp_path / "run") + QUICK + ["--data.image_size", "36"])
    err = capsys.readouterr().err
    assert rc == 0, err[-2000:]
    assert err.count("lenet5 declared 1x32x32, trained at 1x36x36") == 1
    # validate evaluates at the checkpoint's shape without being told again
    args = readme_args(README_FIT, digits, tmp_path / "run")[1:] + QUICK[2:]
    rc = fit(monkeypatch, ["validate", *args, "--ckpt_path", str(tmp_path / "run" / "version_0" / "checkpoints" / "last.ckpt")])
    err = capsys.readouterr().err
    assert rc == 0, err[-2000:]
    assert err.count("lenet5 declared 1x32x32, run at 1x36x36") == 1


def test_a_size_the_net_cannot_take_is_one_located_line_and_exit_2(digits, tmp_path, monkeypatch, capsys):
    rc = fit(monkeypatch, readme_args(README_FIT, digits, tmp_path / "run") + QUICK + ["--data.image_size", "28"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "lenet5.yaml:" in err and "c5" in err


def test_a_transform_list_that_does_not_end_at_the_size_stops_before_training(digits, tmp_path, monkeypatch,
                                                                              capsys):
    rc = fit(monkeypatch, readme_args(README_FIT, digits, tmp_path / "run") + QUICK +
             ["--data.train_transforms", "[{name: Affine, rotate: 5}]"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and not any("Traceback" in line for line in err)
    assert err[-1].startswith("data.train_transforms: ends at 28x28") and "32x32" in err[-1]
    assert not list((tmp_path / "run").glob("version_*/checkpoints"))


@pytest.mark.slow
def test_the_digits_preset_on_a_folder_trains(digits, tmp_path, monkeypatch, capsys):
    """It used to crash at the first batch: the preset kept the files' 28x28 for a 32x32 net."""
    rc = fit(monkeypatch, readme_args(README_FIT, digits, tmp_path / "run") + QUICK +
             ["--data.train_transforms", "digits"])
    assert rc == 0, capsys.readouterr().err[-2000:]


def test_digits_module_follows_the_net_when_image_size_is_unset(tmp_path, monkeypatch, capsys):
    rc = fit(monkeypatch, ["fit", "--config", "lightning_config.yaml", "--trainer.default_root_dir", str(tmp_path),
                           "--trainer.fast_dev_run", "true", "--model.arch", "architectures/lenet5.yaml"])
    assert rc == 0, capsys.readouterr().err[-2000:]
    assert "declared" not in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# augmentation


def _names(compose) -> list[str]:
    return [type(t).__name__ for t in compose.transforms]


def test_auto_is_light_for_small_images_and_the_imagenet_recipe_for_large():
    assert "RandomResizedCrop" not in _names(pipeline("auto", 32, True))
    assert _names(pipeline("auto", 32, False)) == ["Resize"]  # evaluation at the training scale
    assert "RandomResizedCrop" in _names(pipeline("auto", 224, True))
    assert _names(pipeline("auto", 224, False)) == ["SmallestMaxSize", "CenterCrop"]


def test_check_pipeline_names_the_failing_transform():
    with pytest.raises(DataError, match=r"^data.train_transforms: item 1 \(RandomCrop\) fails on a 28x28 image"):
        check_pipeline([{"name": "HorizontalFlip"}, {"name": "RandomCrop", "height": 30, "width": 30}], 30, True,
                       [(28, 28)], 1, "data.train_transforms")
    check_pipeline([{"name": "Resize", "height": 30, "width": 30}, {"name": "RandomCrop", "height": 30, "width": 30}],
                   30, True, [(28, 28), (300, 200)], 3, "data.train_transforms")


@pytest.mark.parametrize("preset", ["auto", "light", "cifar", "digits", "imagenet", "googlenet", "none"])
def test_every_preset_passes_the_check_on_odd_sizes(preset):
    for train in (True, False):
        check_pipeline(preset, 32, train, [(20, 28), (28, 28), (90, 60)], 1, "data.train_transforms")


# ---------------------------------------------------------------------------------------------
# data table, balancing


def test_data_table_warns_about_imbalance_and_tiny_classes(tmp_path):
    for name, count in (("big", 60), ("small", 4)):
        (tmp_path / name).mkdir()
        for i in range(count):
            import cv2

            cv2.imwrite(str(tmp_path / name / f"{i}.png"), np.full((10 + i % 3, 12, 3), i, np.uint8))
    dm = ImageFolderDataModule(str(tmp_path), image_size=16, val_fraction=0.0, show_table=False)
    dm.setup("fit")
    text = table(dm.survey, 3, 16)
    assert "big        60" in text and "small       4" in text
    assert "min 10x12" in text and "max 12x12" in text
    assert "tiny classes in train (< 10 images): small (4)" in text
    assert "imbalanced classes in train: 'big' has 60 images, 'small' 4 (15x)" in text


def test_balanced_sampler_draws_every_class_about_equally():
    labels = [0] * 90 + [1] * 10
    sampler = BalancedSampler(list(range(100)), labels, seed=0)
    drawn = [labels[i] for i, _, _ in sampler]
    assert len(drawn) == 100 and 35 <= sum(drawn) <= 65  # 10 of 100 without balancing
    assert drawn == [labels[i] for i, _, _ in BalancedSampler(list(range(100)), labels, seed=0)]


# ---------------------------------------------------------------------------------------------
# the in-memory fast path


def test_small_folder_is_held_as_tensors_and_shifted_per_sample(digits):
    dm = ImageFolderDataModule(str(digits), image_size=32, channels=1, batch_size=8, show_table=False)
    dm.setup("fit")
    assert set(dm.tensors) == {"train", "val"} and dm.workers("train") == 0
    images, labels, bad = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 1, 32, 32) and images.dtype == torch.uint8 and not bad
    val_images, _, _ = next(iter(dm.val_dataloader()))
    assert torch.equal(val_images, torch.from_numpy(dm.tensors["val"].images[:8]))  # no shift in evaluation


def test_shift_batch_moves_each_image_by_its_own_offset():
    images = np.arange(2 * 1 * 6 * 6, dtype=np.uint8).reshape(2, 1, 6, 6)
    out = shift_batch(images, np.array([2, 0]), np.array([2, 4]), 2)
    assert np.array_equal(out[0], images[0])  # offset == limit: unmoved
    assert np.array_equal(out[1, 0, 2:, :4], images[1, 0, :4, 2:])  # down 2, left 2
    assert (out[1, 0, :2] == 0).all()  # zero fill
    a, b = shifts(np.arange(50), seed=0, epoch=3, limit=2), shifts(np.arange(50), seed=0, epoch=3, limit=2)
    assert np.array_equal(a[0], b[0]) and a[0].min() >= 0 and a[0].max() <= 4 and len(set(a[0])) > 1
    assert not np.array_equal(a[0], shifts(np.arange(50), seed=0, epoch=4, limit=2)[0])


def test_tensor_split_returns_the_same_batch_for_the_same_seeds():
    split = TensorSplit(np.random.default_rng(0).integers(0, 255, (20, 1, 8, 8), dtype=np.uint8),
                        np.arange(20), "light")
    one = split.__getitems__([(3, 0, 1), (7, 0, 1)])
    two = split.__getitems__([(7, 0, 1)])
    assert torch.equal(one[0][1], two[0][0]) and one[1].tolist() == [3, 7]


# ---------------------------------------------------------------------------------------------
# lr-find


@pytest.mark.slow
def test_lr_find_suggests_a_rate_that_trains_the_default_job(tmp_path, monkeypatch, capsys):
    """The README's lr-find, then fit with the rate as printed: it must train the default job about as
    well as the config's rate (0.05: about 0.98 after 3 epochs); no run folder is left by lr-find."""
    args = shlex.split(README_LR_FIND)[3:]
    args = [str(tmp_path / "lr_find.png") if a.endswith(".png") else a for a in args]
    rc = fit(monkeypatch, args + ["--lr_find.num_training", "60", "--trainer.default_root_dir", str(tmp_path),
                                  "--trainer.enable_progress_bar", "false"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err[-2000:]
    assert "weights_only" not in captured.err and "Tip" not in captured.err
    assert (tmp_path / "lr_find.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr_find.png"]
    printed = captured.out.split("--model.optimizer.lr ")[1].split(")")[0]
    rc = fit(monkeypatch, ["fit", "--config", "lightning_config.yaml", "--model.optimizer.lr", printed,
                           "--trainer.max_epochs", "3", "--trainer.default_root_dir", str(tmp_path / "run"),
                           "--trainer.enable_progress_bar", "false"])
    assert rc == 0
    import csv

    rows = csv.DictReader((tmp_path / "run" / "version_0" / "metrics.csv").open())
    assert max(float(r["val/acc"]) for r in rows if r.get("val/acc")) >= 0.95, printed


def test_lr_find_checks_its_plot_path_before_the_test(tmp_path, monkeypatch, capsys):
    (tmp_path / "a_file").write_text("")
    rc = fit(monkeypatch, ["lr-find", "--config", "lightning_config.yaml", "--lr_find.plot",
                           str(tmp_path / "a_file" / "lr.png")])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip().startswith("error: --lr_find.plot") and "Traceback" not in err
    assert "Finding best" not in err


def test_per_step_losses_are_recovered_from_lightnings_average():
    from lightning.pytorch.tuner.lr_finder import _LRCallback

    from pipeline.training.lrfind import step_losses, suggest

    losses = [3.0 - 2.0 / (1 + np.exp(-(i - 60) / 6)) + 0.05 * np.sin(i) for i in range(100)]
    lrs = [1e-6 * 10 ** (6 * i / 99) for i in range(100)]
    # Lightning's own callback, as the range test calls it: the step counter is k after the k-th step
    from types import SimpleNamespace

    callback = _LRCallback(100, None, progress_bar_refresh_rate=0)
    trainer = SimpleNamespace(fit_loop=SimpleNamespace(batch_idx=0), accumulate_grad_batches=1, global_step=0,
                              strategy=SimpleNamespace(broadcast=lambda x: x), should_stop=False)
    for k, loss in enumerate(losses, 1):
        trainer.global_step = k
        callback.on_train_batch_end(trainer, None, {"loss": torch.tensor(loss)}, None, k - 1)
    assert np.allclose(step_losses(callback.losses), losses, atol=1e-5)
    assert 50 <= lrs.index(suggest(lrs, losses)) <= 66  # the steepest fall (step 60), not a rise or the noise


def test_resnet18_example_gets_224_rgb_and_no_leaked_settings(tmp_path):
    from jsonargparse import Namespace

    from pipeline.training.datafit import declared_input, drop_leaked, follow_net

    name, declared = declared_input(str(ROOT / "architectures" / "resnet18.yaml"), None)
    # a digits config that sets image_size 16 and val_fraction 0.2; jsonargparse carried both over
    config = tmp_path / "digits.yaml"
    config.write_text((ROOT / "lightning_config.yaml").read_text().replace(
        "    val_fraction: 0.2", "    val_fraction: 0.2\n    image_size: 16"))
    data = Namespace(class_path="datamodules.ImageFolderDataModule",
                     init_args=Namespace(root="x", image_size=16, channels=None, val_fraction=0.2, batch_size=8))
    args = ["--config", str(config), "--data", "datamodules.ImageFolderDataModule", "--data.batch_size", "8"]
    assert drop_leaked(args, data) == ["image_size", "val_fraction"]
    follow_net(data, declared)
    assert (name, declared) == ("resnet18", (3, 224, 224))
    assert (data.init_args.image_size, data.init_args.channels, data.init_args.val_fraction,
            data.init_args.batch_size) == (224, 3, 0.1, 8)
