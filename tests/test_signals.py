"""1-D signals end to end: arrays and WAV folders, windows and augmentation, windowed evaluation
(averaged like crops), 1-D synthetic data, sequential digits, and fit/test/predict through the CLI."""
from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import wavfile

from datamodules import (DataError, SequentialDigitsDataModule, SignalArrayDataModule, SignalFolderDataModule,
                         SyntheticDataModule)
from datamodules.signal_augment import Gain, Noise, SignalTransform, TimeShift, augmentations, fit_length
from pipeline.cli import main
from pipeline.evaluation import EvalConfig, Evaluator, Member, combine
from pipeline.evaluation.windows import make_windows, window_starts

ROOT = Path(__file__).resolve().parents[1]
FIT = "python -m pipeline fit --config configs/wavenet_sequential_digits.yaml"
TEST = "python -m pipeline test --config configs/wavenet_sequential_digits.yaml --ckpt_path last --eval.crops windows --eval.windows 5"  # noqa: E501
PREDICT = "python -m pipeline predict --config configs/wavenet_sequential_digits.yaml --ckpt_path last"
FOLDER = "python -m pipeline fit --config configs/wavenet_sequential_digits.yaml --data datamodules.SignalFolderDataModule --data.root my_sounds --data.length 4096 --model.arch architectures/wavenet_classifier.yaml"  # noqa: E501
ARRAYS = "python -m pipeline fit --config configs/wavenet_sequential_digits.yaml --data datamodules.SignalArrayDataModule --data.train signals.npz"  # noqa: E501
QUICK = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "2",
         "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


# -- windows and augmentation -----------------------------------------------------------------------
def test_window_starts_are_evenly_spaced_from_start_to_end():
    assert window_starts(100, 40, 4) == [0, 20, 40, 60]
    assert window_starts(100, 40, 1) == [30]  # the centre window
    assert window_starts(30, 40, 3) == [0, 0, 0]  # shorter than a window: padded, one place only
    signal = torch.arange(10.0).view(1, 10)
    windows = make_windows(signal, 3, 4)
    assert windows.shape == (3, 1, 4)
    assert windows[:, 0, 0].tolist() == [0.0, 3.0, 6.0] and windows[-1, 0, -1] == 9.0
    padded = make_windows(torch.ones(2, 3), 2, 7)
    assert padded.shape == (2, 2, 7) and padded.sum() == 12  # zeros around the 3 samples


def test_fit_length_crops_and_pads():
    x = np.arange(10, dtype=np.float32)[None]
    assert fit_length(x, 4).tolist() == [[3, 4, 5, 6]]  # centred
    assert fit_length(x, 4, 6).tolist() == [[6, 7, 8, 9]]
    assert fit_length(x[:, :2], 5).tolist() == [[0, 0, 1, 0, 0]]
    assert fit_length(x[:, :2], 5, 3).tolist() == [[0, 0, 0, 0, 1]]


def test_training_windows_are_random_seeded_and_of_fixed_length():
    transform = SignalTransform(16, True)
    x = np.arange(40, dtype=np.float32)[None]
    starts = set()
    for seed in range(20):
        transform.set_random_state(np.random.default_rng(seed), None)
        window = transform(x)
        assert window.shape == (1, 16) and np.all(np.diff(window[0]) == 1)
        starts.add(float(window[0, 0]))
    assert len(starts) > 5 and min(starts) >= 0 and max(starts) <= 24
    transform.set_random_state(np.random.default_rng(3), None)
    first = transform(x)
    transform.set_random_state(np.random.default_rng(3), None)
    assert np.array_equal(first, transform(x))  # per-sample seeds make it reproducible
    short = SignalTransform(16, True)(x[:, :5])
    assert short.shape == (1, 16) and short.sum() == x[0, :5].sum()  # padded with zeros, nothing lost


def test_augmentations():
    rng = np.random.default_rng(0)
    x = np.ones((2, 100), dtype=np.float32)
    shifted = TimeShift(0.2)(x, rng)
    zeros = int((shifted[0] == 0).sum())
    assert 0 <= zeros <= 20 and np.array_equal(shifted[0], shifted[1])  # channels move together
    assert (TimeShift(0.2)(np.arange(100, dtype=np.float32)[None], np.random.default_rng(1)) != np.arange(100)).any()
    gains = {float(Gain(0.5, 2.0)(x, np.random.default_rng(s))[0, 0]) for s in range(50)}
    assert min(gains) >= 0.5 and max(gains) <= 2.0 and len(gains) > 10
    noisy = Noise(0.1)(np.zeros((1, 20000), dtype=np.float32), rng)
    assert abs(float(noisy.std()) - 0.1) < 0.005
    assert [type(t).__name__ for t in augmentations("signal")] == ["TimeShift", "Gain", "Noise"]
    assert augmentations("none") == []
    listed = augmentations([{"name": "Noise", "std": 0.2}, {"name": "Gain", "min_gain": 0.9, "max_gain": 1.1}])
    assert [type(t).__name__ for t in listed] == ["Noise", "Gain"] and listed[0].std == 0.2


@pytest.mark.parametrize("spec, message", [
    ([{"name": "Nois", "std": 0.1}], "unknown signal transform 'Nois' (did you mean Noise?)"),
    ([{"name": "Gain", "min_gain": 2.0, "max_gain": 1.0}], "signal transform 'Gain': need 0 < min_gain"),
    ([{"name": "Noise", "sigma": 1}], "signal transform 'Noise': "),
    ("loud", "unknown signal augmentation preset 'loud'; known: signal, none"),
])
def test_augmentation_mistakes(spec, message):
    with pytest.raises(DataError, match=None) as err:
        SequentialDigitsDataModule(train_transforms=spec)
    assert message in str(err.value)


# -- windowed evaluation is averaged like crops -----------------------------------------------------
def test_windows_are_averaged_like_crops():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 5), torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten())
    signals = [torch.randn(2, 40), torch.randn(2, 25)]
    evaluator = Evaluator(3, EvalConfig(crops="windows", windows=4))
    got = evaluator.log_probs([Member(net, 16)], signals)
    expected = combine([torch.stack([net(make_windows(s, 4, 16)) for s in signals])])
    torch.testing.assert_close(got, expected)
    assert evaluator.crops_per_image(16) == 4
    # prob average: log of the mean of the windows' softmax
    mean = net(make_windows(signals[0], 4, 16)).softmax(1).mean(0)
    torch.testing.assert_close(got[0].exp(), mean)


# -- datamodules ------------------------------------------------------------------------------------
def _batch(dm, split="train"):
    dm.setup("fit")
    loader = dm.train_dataloader() if split == "train" else dm.val_dataloader()
    x, y = next(iter(loader))
    return dm.on_after_batch_transfer((x, y), 0)


def test_synthetic_signals():
    dm = SyntheticDataModule(num_classes=3, input_shape=(2, 50), train_size=24, val_size=8, batch_size=8)
    x, y = _batch(dm)
    assert x.shape == (8, 2, 50) and x.dtype == torch.float32 and y.dtype == torch.int64
    levels = [x[y == c].mean().item() for c in range(3) if (y == c).any()]
    assert levels == sorted(levels)  # the class sets the level: learnable
    assert dm.input_shape == (2, 50) and dm.num_classes == 3


def test_sequential_digits():
    dm = SequentialDigitsDataModule(batch_size=16)
    assert dm.input_shape == (1, 64) and dm.num_classes == 10
    x, y = _batch(dm, "val")
    assert x.shape == (16, 1, 64)
    from sklearn.datasets import load_digits

    # pixel by pixel, row by row: the sequence is the standardised image, flattened
    images = (load_digits().images.reshape(-1, 64) / 16.0 - 0.3) / 0.4
    assert any(np.allclose(x[0, 0].numpy(), im, atol=1e-5) for im in images)
    assert len(dm.splits["train"][0]) + len(dm.splits["val"][0]) == 1797
    assert SequentialDigitsDataModule(image_size=16).input_shape == (1, 256)


def test_a_signal_module_is_not_an_image_module():
    # both kinds share their base (splits, seeded loaders, class names in the checkpoint); the images'
    # statistics, albumentations pipelines and Mixup are not a signal module's
    from datamodules import ClassificationDataModule, DigitsDataModule, ImageDataModule

    for cls in (SignalArrayDataModule, SignalFolderDataModule, SequentialDigitsDataModule):
        assert issubclass(cls, ClassificationDataModule) and not issubclass(cls, ImageDataModule)
    assert issubclass(DigitsDataModule, ClassificationDataModule)
    dm = SequentialDigitsDataModule(batch_size=16)
    assert not hasattr(dm, "mixup_alpha") and not hasattr(dm, "normalize") and not hasattr(dm, "eval_spec")
    assert dm.state_dict() == {"class_names": [str(i) for i in range(10)]}
    x, y = _batch(dm, "val")  # float batches go to the net as they are
    assert x.dtype == torch.float32 and x.shape == (16, 1, 64)


def test_arrays_from_npz_and_npy(tmp_path):
    rng = np.random.default_rng(0)
    signals, labels = rng.normal(size=(30, 3, 40)).astype(np.float32) * 5 + 2, np.arange(30) % 3
    np.savez(tmp_path / "d.npz", signals=signals, labels=labels)
    dm = SignalArrayDataModule(str(tmp_path / "d.npz"), batch_size=4, class_names=["a", "b", "c"], length=32,
                               train_transforms="signal")
    x, y = _batch(dm)
    assert x.shape == (4, 3, 32) and dm.input_shape == (3, 32) and dm.class_names == ["a", "b", "c"]
    assert len(dm.splits["val"][0]) == 6
    train = np.concatenate(dm.splits["train"][0], axis=-1)
    np.testing.assert_allclose(train.mean(-1), 0, atol=1e-5)  # standardised per channel
    np.testing.assert_allclose(train.std(-1), 1, atol=1e-4)
    np.save(tmp_path / "x.npy", signals[:, 0])  # (N, L): one channel
    np.save(tmp_path / "y.npy", labels)
    np.savez(tmp_path / "v.npz", x=signals[:9, 0], y=labels[:9])
    dm = SignalArrayDataModule(str(tmp_path / "x.npy"), train_labels=str(tmp_path / "y.npy"),
                               val=str(tmp_path / "v.npz"), standardize=False, batch_size=9)
    x, y = _batch(dm, "val")
    assert dm.input_shape == (1, 40) and dm.num_classes == 3
    np.testing.assert_allclose(x[:, 0].numpy(), signals[:9, 0], rtol=1e-6)


@pytest.mark.parametrize("files, message", [
    ({"d.npz": {"a": np.zeros((4, 8))}}, "d.npz: needs arrays 'signals' and 'labels' (or 'x' and 'y'), has a"),
    ({"d.npz": {"x": np.zeros((4, 2, 2, 8)), "y": np.zeros(4, int)}}, "d.npz: expected a numeric array of shape"),
    ({"d.npz": {"x": np.zeros((4, 8)), "y": np.zeros(3, int)}}, "d.npz: 'y': expected 4 non-negative integer labels"),
    ({"d.npz": b"not numpy"}, "d.npz: not a readable NumPy file"),
    ({}, "signals file not found: "),
])
def test_array_mistakes(tmp_path, files, message):
    for name, content in files.items():
        if isinstance(content, bytes):
            (tmp_path / name).write_bytes(content)
        else:
            np.savez(tmp_path / name, **content)
    with pytest.raises(DataError) as err:
        SignalArrayDataModule(str(tmp_path / "d.npz")).setup()
    assert message in str(err.value)


def write_sounds(root: Path, classes=("down", "up"), per_class=6, rate=8000, length=300) -> None:
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            t = np.arange(length + 37 * i) / rate
            tone = np.sin(2 * np.pi * (300 + 500 * c) * t) + 0.1 * rng.normal(size=t.shape)
            wavfile.write(root / name / f"{i}.wav", rate, (tone * 12000).astype(np.int16))


def test_wav_folder(tmp_path):
    write_sounds(tmp_path / "sounds")
    dm = SignalFolderDataModule(str(tmp_path / "sounds"), length=256, batch_size=4, val_fraction=0.25)
    x, y = _batch(dm)
    assert x.shape == (4, 1, 256) and dm.class_names == ["down", "up"]
    assert len(dm.splits["val"][0]) == 3 and len(dm.predict_names()) == 3
    assert all(n.endswith(".wav") for n in dm.predict_names())
    write_sounds(tmp_path / "new", classes=("any",), per_class=2)
    dm = SignalFolderDataModule(str(tmp_path / "sounds"), length=256, predict_root=str(tmp_path / "new"))
    dm.setup()
    x, index = next(iter(dm.predict_dataloader()))
    assert x.shape == (2, 1, 256) and index.tolist() == [0, 1]
    assert [Path(n).name for n in dm.predict_names()] == ["0.wav", "1.wav"]
    # formats: 8-bit unsigned, float, stereo
    folder = tmp_path / "formats"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir(parents=True)
    wavfile.write(folder / "a" / "u8.wav", 100, np.full((50, 2), 192, np.uint8))
    wavfile.write(folder / "a" / "f.wav", 100, np.full((60, 2), 0.5, np.float32))
    wavfile.write(folder / "b" / "i16.wav", 100, np.full((40, 2), -16384, np.int16))
    wavfile.write(folder / "b" / "i32.wav", 100, np.full((40, 2), 2**30, np.int32))
    dm = SignalFolderDataModule(str(folder), standardize=False, val_fraction=0.5)
    dm.setup()
    values = sorted(float(s[0, 0]) for split in dm.splits.values() for s in split[0])
    assert values == [-0.5, 0.5, 0.5, 0.5] and dm.input_shape[0] == 2


@pytest.mark.parametrize("mistake, message", [
    ("rate", "sample rate 16000 Hz, but "),
    ("corrupt", "bad.wav: not a readable WAV file"),
    ("empty_class", "up: no .wav files in this class folder"),
    ("missing", "signal folder not found: "),
])
def test_wav_mistakes(tmp_path, mistake, message):
    root = tmp_path / "sounds"
    write_sounds(root, per_class=3)
    if mistake == "rate":
        wavfile.write(root / "up" / "z.wav", 16000, np.zeros(100, np.int16))
    elif mistake == "corrupt":
        (root / "up" / "bad.wav").write_bytes(b"RIFF1234WAVE")
    elif mistake == "empty_class":
        for f in (root / "up").iterdir():
            f.unlink()
    else:
        root = tmp_path / "nowhere"
    with pytest.raises(DataError) as err:
        SignalFolderDataModule(str(root)).setup()
    assert message in str(err.value)


# -- the CLI: fit, test with windows, predict -------------------------------------------------------
@pytest.fixture(scope="module")
def sequential_run(tmp_path_factory):
    """The README's fit, cut to 2 batches of one epoch."""
    root = tmp_path_factory.mktemp("seq")
    import os

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        assert main([*shlex.split(FIT)[3:], *QUICK, "--trainer.default_root_dir", str(root / "sequential_digits")]) == 0
    finally:
        os.chdir(cwd)
    return root


@pytest.mark.slow
def test_cli_fit_test_predict_on_signals(sequential_run, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    root = sequential_run / "sequential_digits"
    assert (root / "version_0" / "checkpoints" / "last.ckpt").is_file()
    args = shlex.split(TEST.replace("runs/sequential_digits", str(root)))[3:]
    assert main([*args, "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false"]) == 0
    report = json.loads((root / "reports" / "test.json").read_text())
    assert report["samples"] == 360 and report["crops"]["mode"] == "windows" and report["crops"]["per_image"] == 5
    assert "crops windows (5 per image" in capsys.readouterr().out
    args = shlex.split(PREDICT.replace("runs/sequential_digits", str(root)))[3:]
    assert main([*args, "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false"]) == 0
    rows = list(csv.DictReader((root / "reports" / "predictions.csv").open()))
    assert len(rows) == 360 and rows[0]["file"] == "val[0]" and 0 < float(rows[0]["prob_1"]) <= 1
    # image crop modes are refused for a 1-D net, with one line and status 2
    capsys.readouterr()
    assert main([*args, "--trainer.default_root_dir", str(root), "--eval.crops", "ten"]) == 2
    assert capsys.readouterr().err.strip() == "eval.crops: 1-D signals take 'center' or 'windows' (no scales or mirrors), got 'ten'"


@pytest.mark.slow
def test_cli_fit_on_wav_folder_and_arrays(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_sounds(tmp_path / "my_sounds", per_class=4, length=600)
    for name in ("configs", "architectures"):
        (tmp_path / name).symlink_to(ROOT / name)
    # the README's command, with a shorter window so the 20-layer stack is quick here
    args = [*shlex.split(FOLDER)[3:], "--data.length", "256", *QUICK, "--trainer.default_root_dir", "runs/sounds"]
    assert main(args) == 0
    assert (tmp_path / "runs" / "sounds" / "version_0" / "checkpoints" / "last.ckpt").is_file()
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "signals.npz", signals=rng.normal(size=(40, 64)).astype(np.float32), labels=np.arange(40) % 4)
    assert main([*shlex.split(ARRAYS)[3:], *QUICK, "--trainer.default_root_dir", "runs/arrays"]) == 0
    capsys.readouterr()
    assert main([*shlex.split(FOLDER)[3:], "--data.root", "nowhere", *QUICK]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "signal folder not found: nowhere"


def test_eval_windows_on_an_image_net_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code = main(["test", "--config", "lightning_config.yaml", "--eval.crops", "windows",
                 "--trainer.default_root_dir", str(tmp_path)])
    assert code == 2
    assert capsys.readouterr().err.strip() == ("eval.crops: 'windows' is for 1-D signals; images take center, flip, "
                                               "ten or googlenet144")
