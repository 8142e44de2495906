"""Hostile input: image bombs, undecodable files, diverging training, bad arguments, bad checkpoints.

Every case a user can cause ends in one line naming the file or option and what was expected, exit
status 2 and no traceback (or, for bad images under skip_bad, a completed run that reports them).
The corpus is generated here; bombs are a header declaring a huge image and a few bytes of data.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules import DataError, ImageFolderDataModule, verify_image_folder
from datamodules import decode as decoding
from datamodules.decode import BadImage, decode, read_header
from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# the corpus


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, width: int = 40000, height: int = 40000) -> Path:
    """A PNG whose header declares width x height grey pixels, followed by one compressed row of zeros:
    a few hundred bytes on disk, 1.6 GB (40000^2) if a decoder allocated what the header says."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    row = zlib.compress(b"\0" * (width + 1), 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", row) + _chunk(b"IEND", b""))
    return path


def jpeg_bomb(path: Path, width: int = 60000, height: int = 60000) -> Path:
    """A real 8x8 JPEG whose frame header (SOF0) is patched to declare width x height."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (90, 20, 200)).save(path, "JPEG", quality=90)
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


def png(path: Path, size=(12, 10), value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 255 - value, value // 2)).save(path)
    return path


def tiny_arch(tmp_path: Path, channels: int = 3, classes: int = 2, side: int = 8) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(f"input: [{channels}, {side}, {side}]\nvars: {{classes: {classes}}}\nnodes:\n"
                    "  c: {block: conv, out: 4}\n  p: global_pool\n  fc: {block: linear, out: classes}\n")
    return str(path)


@pytest.fixture
def bomb_folder(tmp_path) -> Path:
    """Two classes of small PNGs, plus a PNG bomb in one and a JPEG bomb in the other."""
    root = tmp_path / "imgs"
    for c, name in enumerate(("a", "b")):
        for i in range(4):
            png(root / name / f"{i}.png", value=40 + 150 * c)
    png_bomb(root / "a" / "bomb.png")
    jpeg_bomb(root / "b" / "bomb.jpg")
    return root


def fit_args(root: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["fit", "--config", str(ROOT / "lightning_config.yaml"), "--data", "datamodules.ImageFolderDataModule",
            "--data.root", str(root), "--data.image_size", "8", "--data.batch_size", "4",
            "--data.val_fraction", "0.0", "--data.train_transforms", "none", "--model.arch", tiny_arch(tmp_path),
            "--model.channels_last", "false", "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "0",
            "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.enable_progress_bar", "false",
            *extra]


def one_line(err: str) -> str:
    """The last line of stderr, after checking that no traceback came before it."""
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    return lines[-1]


# ---------------------------------------------------------------------------------------------
# bounded decoding


@pytest.mark.parametrize("make, size", [(png_bomb, "40000x40000"), (jpeg_bomb, "60000x60000")])
def test_a_bomb_is_refused_from_its_header_without_decoding(tmp_path, monkeypatch, make, size):
    bomb = make(tmp_path / "bomb.img")
    assert bomb.stat().st_size < 2000

    def no_decoding(*args, **kwargs):
        raise AssertionError("a decoder ran on a file whose header is over the limit")

    monkeypatch.setattr(decoding.cv2, "imdecode", no_decoding)
    monkeypatch.setattr(Image.Image, "load", no_decoding)
    with pytest.raises(BadImage) as err:
        decode(bomb, 3)
    assert str(err.value).startswith(f"{bomb}: image too large: {size}")
    assert "max_pixels" in str(err.value)


def test_the_pixel_limit_is_configurable(tmp_path):
    image = png(tmp_path / "x.png", size=(12, 10))
    assert decode(image, 3).shape == (10, 12, 3)
    assert read_header(image).pixels == 120
    with pytest.raises(BadImage, match=r"12x10 = 120 pixels, the limit is 119"):
        decode(image, 3, max_pixels=119)
    # above PIL's own hard stop (2 x 89.5 megapixels) the header is still read, not refused by PIL
    assert read_header(png_bomb(tmp_path / "b.png", 20000, 10000), max_pixels=300_000_000).pixels == 200_000_000


@pytest.mark.parametrize("failure", [RuntimeError("boom"), MemoryError(), ValueError("odd"), KeyError("k")])
def test_any_decoder_failure_becomes_a_bad_file_naming_it(tmp_path, monkeypatch, failure):
    image = png(tmp_path / "x.png")

    def fails(*args, **kwargs):
        raise failure

    monkeypatch.setattr(decoding.cv2, "imdecode", fails)
    with pytest.raises(BadImage) as err:
        decode(image, 3)
    assert str(err.value).startswith(f"{image}: cannot decode: {type(failure).__name__}")


def test_verify_lists_bombs_with_their_paths(bomb_folder):
    problems = dict(verify_image_folder(bomb_folder))
    assert set(problems) == {str(bomb_folder / "a" / "bomb.png"), str(bomb_folder / "b" / "bomb.jpg")}
    assert all(reason.startswith("image too large") for reason in problems.values())
    dm = ImageFolderDataModule(str(bomb_folder), verify=True)
    with pytest.raises(DataError, match=r"^2 bad file\(s\)"):
        dm.setup()


def test_in_memory_caching_leaves_bombs_to_the_loader(bomb_folder):
    dm = ImageFolderDataModule(str(bomb_folder), image_size=8, val_fraction=0.0, train_transforms="none")
    dm.setup()
    assert len(dm.items["train"]) == 10 and len(dm.cache["train"]) == 8  # cached: every image but the bombs
    dataset = dm.train_dataloader().dataset
    bad = [dataset[i][2] for i in range(len(dataset)) if dataset[i][2]]
    assert len(bad) == 2 and all("image too large" in b for b in bad)


@pytest.mark.slow
def test_fit_on_a_bomb_folder_names_the_file_and_exits_2(bomb_folder, tmp_path, capsys):
    assert main(fit_args(bomb_folder, tmp_path)) == 2
    line = one_line(capsys.readouterr().err)
    assert "bomb." in line and "image too large" in line and "skip_bad" in line


@pytest.mark.slow
def test_fit_with_skip_bad_completes_and_reports_the_bombs(bomb_folder, tmp_path, capsys):
    with pytest.warns(UserWarning, match="skipped") as warned:
        assert main(fit_args(bomb_folder, tmp_path, "--data.skip_bad", "true")) == 0
    reported = " ".join(str(w.message) for w in warned)
    assert "bomb.png: cannot decode image (image too large" in reported and "bomb.jpg" in reported
    assert "Traceback" not in capsys.readouterr().err
    assert (tmp_path / "run" / "version_0" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_fit_with_verify_lists_the_bombs_and_exits_2(bomb_folder, tmp_path, capsys):
    assert main(fit_args(bomb_folder, tmp_path, "--data.verify", "true")) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "2 bad file(s)" in err
    assert f"{bomb_folder / 'a' / 'bomb.png'}: image too large: 40000x40000" in err


# ---------------------------------------------------------------------------------------------
# the NaN guard: no checkpoint with non-finite values, and the truth about the last finite one


def _diverging_run(tmp_path: Path, poison=None, every_n_steps: int = 1, lr: float = 0.05, epochs: int = 2):
    import lightning as L
    import torch
    from datamodules import SyntheticDataModule
    from pipeline.training import ClassifierModule, TrainingDiverged
    from pipeline.training.fault import FaultTolerance

    arch = tmp_path / "bn.yaml"
    arch.write_text("input: [3, 8, 8]\nvars: {classes: 4}\nnodes:\n  stem: {block: conv, out: 8}\n"
                    "  pool: global_pool\n  fc: {block: linear, out: classes}\n")

    class Poison(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if poison is not None and trainer.global_step == 3:
                with torch.no_grad():
                    poison(module, trainer)

    torch.manual_seed(0)
    model = ClassifierModule(str(arch), num_classes=4, optimizer={"name": "sgd", "lr": lr})
    data = SyntheticDataModule(num_classes=4, input_shape=(3, 8, 8), train_size=48, val_size=8, batch_size=8)
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", filename="last", enable_version_counter=False)
    trainer = L.Trainer(max_epochs=epochs, callbacks=[Poison(), FaultTolerance(every_n_steps=every_n_steps), ckpt],
                        logger=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0)
    with pytest.raises(TrainingDiverged) as err:
        trainer.fit(model, data)
    return str(err.value), tmp_path / "ckpt" / "last.ckpt"


def _all_finite(path: Path) -> tuple[bool, int]:
    import torch
    from pipeline.training.fault import nonfinite

    state = torch.load(path, weights_only=True)
    return not nonfinite({"s": state["state_dict"], "o": state["optimizer_states"]}), state["global_step"]


@pytest.mark.parametrize("what, poison", [
    ("net.stem.norm.running_var", lambda m, t: m.net.stem.norm.running_var.fill_(float("inf"))),
    ("optimizer_states.0.state", lambda m, t: next(iter(t.optimizers[0].state.values()))["momentum_buffer"]
     .fill_(float("nan"))),
])
def test_a_checkpoint_with_non_finite_state_is_never_written(tmp_path, caplog, what, poison):
    with caplog.at_level("INFO"):
        message, last = _diverging_run(tmp_path, poison)
    assert "weights_only` was not set" not in caplog.text  # mid-epoch saves say what they write
    assert f"non-finite values (NaN or inf) in {what}" in message
    assert "at step 3" in message and "that checkpoint was not written" in message
    assert f"the last finite checkpoint is {last} (step 2)" in message
    assert _all_finite(last) == (True, 2)


def test_divergence_before_any_checkpoint_says_there_is_none(tmp_path):
    message, last = _diverging_run(tmp_path, every_n_steps=0, lr=1e6, epochs=1)
    assert "nothing to resume from" in message and "last finite checkpoint is" not in message
    assert not last.exists()


# ---------------------------------------------------------------------------------------------
# one line, exit 2, before any work: the user's mistakes of every subcommand


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """Checkpoints and files a hostile or careless user could pass: a real checkpoint of another net
    (with EMA weights), a plain state dict, a truncated file, a pickle that would run code, binary junk,
    and a regular file where a folder is expected."""
    import os

    import lightning as L
    import torch
    from datamodules import SyntheticDataModule
    from pipeline.training import ClassifierModule

    root = tmp_path_factory.mktemp("corpus")
    arch = tiny_arch(root, classes=4)
    model = ClassifierModule(arch, num_classes=4, ema_decay=0.5)
    trainer = L.Trainer(max_steps=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, SyntheticDataModule(num_classes=4, input_shape=(3, 8, 8), train_size=16, batch_size=8))
    trainer.save_checkpoint(root / "other_net.ckpt")
    torch.save(model.net.state_dict(), root / "state_dict.pt")
    data = (root / "state_dict.pt").read_bytes()
    (root / "truncated.ckpt").write_bytes(data[: len(data) // 2])

    class RunsCode:
        def __reduce__(self):
            return (os.system, ("echo this must never run",))

    torch.save({"state_dict": RunsCode()}, root / "pickle.ckpt")
    (root / "binary.yaml").write_bytes(bytes(range(256)) * 8)
    (root / "a_file").write_text("not a folder")
    return {"arch": Path(arch), "root": root, **{p.stem: p for p in root.iterdir()}}


FIT = ["fit", "--config", str(ROOT / "lightning_config.yaml"), "--trainer.fast_dev_run", "true"]


@pytest.mark.parametrize("args, expected", [
    (["--ckpt_path", "{root}/missing.ckpt"], "error: --ckpt_path {root}/missing.ckpt: checkpoint not found"),
    (["--ckpt_path", "{truncated}"], "error: --ckpt_path {truncated}: not a readable checkpoint (truncated or corrupt"),
    (["--ckpt_path", "{root}"], "error: --ckpt_path {root}: is a folder, expected a checkpoint file"),
    (["--ckpt_path", "{state_dict}"], "error: --ckpt_path {state_dict}: not a Lightning checkpoint"),
    (["--ckpt_path", "{pickle}"], "error: --ckpt_path {pickle}: not a readable checkpoint (refused: it asks to build the Python object"),
    (["--ckpt_path", "{other_net}"], "error: --ckpt_path {other_net} is a checkpoint of {arch} (vars {{}}), the "
                                     "config's model is architectures/digits_aux.yaml"),
    (["--model.init_from", "{truncated}"], "init_from: {truncated}: not a readable weights file (truncated or corrupt"),
    (["--model.init_from", "{pickle}"], "init_from: {pickle}: not a readable weights file (refused"),
    (["--data.init_args.batch_size", "0"], "data.batch_size: expected a positive number of samples per batch, got 0"),
    (["--data.init_args.batch_size", "-3"], "data.batch_size: expected a positive number"),
    (["--model.optimizer.lr", "-0.1"], "model.optimizer.lr: expected a learning rate >= 0, got -0.1"),
    (["--config", "{binary}"], "error: --config {binary}: not a YAML text file (binary content at byte 0)"),
    (["--trainer.default_root_dir", "{a_file}/run"], "error: --trainer.default_root_dir {a_file}/run: {a_file} is a "
                                                     "file, not a folder"),
])
def test_training_mistakes_are_one_line_and_exit_2(corpus, monkeypatch, capsys, args, expected):
    monkeypatch.chdir(ROOT)
    names = {k: str(v) for k, v in corpus.items()}
    assert main(FIT + [a.format(**names) for a in args]) == 2
    assert one_line(capsys.readouterr().err).startswith(expected.format(**names))


@pytest.mark.parametrize("args, expected", [
    (["export", "{arch}", "--format", "onnx", "-o", "{a_file}/x.onnx"], "error: -o {a_file}/x.onnx: {a_file} is a file"),
    (["import-weights", "torchvision:resnet18", "{arch}", "-o", "{a_file}/x.pt", "--from-file", "{state_dict}"],
     "error: -o {a_file}/x.pt: {a_file} is a file"),
    (["summary", "{arch}", "--graph", "{a_file}/g.svg"], "error: --graph {a_file}/g.svg: {a_file} is a file"),
    (["import-weights", "torchvision:nosuchnet", "{arch}", "-o", "{root}/x.pt", "--from-file", "{state_dict}"],
     "error: unknown torchvision model 'nosuchnet'"),
    (["export", "{arch}", "--weights", "{pickle}", "--format", "onnx", "-o", "{root}/x.onnx"],
     "{pickle}: not a readable weights file (refused: it asks to build the Python object"),
    (["export", "{arch}", "--weights", "{truncated}", "--format", "onnx", "-o", "{root}/x.onnx"],
     "{truncated}: not a readable weights file (truncated or corrupt"),
])
def test_tool_mistakes_are_one_line_and_exit_2(corpus, capsys, args, expected):
    names = {k: str(v) for k, v in corpus.items()}
    assert main([a.format(**names) for a in args]) == 2
    err = capsys.readouterr().err
    assert one_line(err).startswith(expected.format(**names)) and "weights_only=False" not in err


def test_export_reads_fits_checkpoints_and_prefers_the_ema_weights(corpus, tmp_path, capsys):
    import torch

    out = tmp_path / "net.pt"
    assert main(["export", str(corpus["arch"]), "--weights", str(corpus["other_net"]), "--format", "torchscript",
                 "-o", str(out)]) == 0
    assert f"EMA weights of {corpus['other_net']}" in capsys.readouterr().out
    state = torch.load(corpus["other_net"], weights_only=True)["state_dict"]
    exported = torch.jit.load(str(out)).state_dict()
    ema = {k[len("ema.module."):]: v for k, v in state.items() if k.startswith("ema.module.")}
    assert ema and all(torch.equal(exported[k], v) for k, v in ema.items())
    assert any(not torch.equal(state[f"net.{k}"], v) for k, v in ema.items())  # the EMA is not the raw net


def test_import_weights_reads_a_fit_checkpoint_and_respects_the_umask(corpus, tmp_path, capsys):
    import os

    import torch

    out = tmp_path / "imported.pt"
    old = os.umask(0o022)
    try:
        assert main(["import-weights", "torchvision:alexnet", str(corpus["arch"]), "-o", str(out),
                     "--from-file", str(corpus["other_net"])]) == 0
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644
    state = torch.load(out, weights_only=True)
    saved = torch.load(corpus["other_net"], weights_only=True)["state_dict"]
    assert torch.equal(state["fc.fc.weight"], saved["ema.module.fc.fc.weight"])


def test_loading_another_nets_checkpoint_names_both_nets(corpus, tmp_path):
    """``--ckpt_path last`` (resolved by Lightning, after the config checks) meets the same check on loading."""
    from pipeline.errors import ArchError
    from pipeline.checkpoints import read_checkpoint
    from pipeline.training import ClassifierModule

    arch = tmp_path / "wider.yaml"
    arch.write_text(corpus["arch"].read_text().replace("out: 4}", "out: 6}"))
    checkpoint = read_checkpoint(corpus["other_net"])
    ClassifierModule(str(corpus["arch"]), num_classes=4).on_load_checkpoint(checkpoint)  # the same net: fine
    with pytest.raises(ArchError, match=rf"another net than {arch} \(its {corpus['arch']} \(vars {{}}\)\): "
                                        r"'c.conv.weight' is 4x3x3x3 there, 6x3x3x3 here"):
        ClassifierModule(str(arch), num_classes=4).on_load_checkpoint(checkpoint)


def test_a_folder_with_one_class_or_an_empty_class_is_refused(tmp_path):
    for i in range(2):
        png(tmp_path / "one" / "a" / f"{i}.png")
    with pytest.raises(DataError, match=r"one: 1 class folder\(s\) with images \(a\); a classifier needs at least 2"):
        ImageFolderDataModule(str(tmp_path / "one"))
    (tmp_path / "one" / "b").mkdir()
    with pytest.raises(DataError, match=r"one/b: empty class folder \(no files\)"):
        ImageFolderDataModule(str(tmp_path / "one"))
    png(tmp_path / "one" / "c" / "0.png")
    with pytest.warns(UserWarning, match=r"left out 1 empty class folder"):
        assert ImageFolderDataModule(str(tmp_path / "one"), skip_bad=True).class_names == ["a", "c"]


def test_sigterm_during_the_sanity_check_says_nothing_was_trained(tmp_path, capsys):
    import os
    import signal

    import lightning as L
    from lightning.pytorch.utilities.exceptions import SIGTERMException
    from datamodules import SyntheticDataModule
    from pipeline.training import ClassifierModule
    from pipeline.training.fault import FaultTolerance

    class Kill(L.Callback):
        def on_validation_batch_start(self, trainer, *args):
            if trainer.sanity_checking:
                os.kill(os.getpid(), signal.SIGTERM)

    model = ClassifierModule(tiny_arch(tmp_path), num_classes=2)
    trainer = L.Trainer(max_epochs=1, callbacks=[Kill(), FaultTolerance(every_n_steps=1)], logger=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    with pytest.raises(SIGTERMException):
        trainer.fit(model, SyntheticDataModule(num_classes=2, input_shape=(3, 8, 8), train_size=16, batch_size=8))
    assert "SIGTERM during the sanity check: nothing was trained and no checkpoint was written" in \
        capsys.readouterr().err
    assert not list(tmp_path.rglob("*.ckpt"))


# ---------------------------------------------------------------------------------------------
# property: random bytes as images, checkpoints and configs never get past one line and exit 2

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\x00", b"RIFF\x00\x00\x00\x00WEBP",
         b"PK\x03\x04", b"\x80\x02"]  # image formats, then a zip and a pickle header (what torch.load reads)
RANDOM = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(RANDOM, max_examples=60)
@given(head=st.sampled_from(MAGIC), body=st.binary(max_size=600))
def test_random_bytes_as_an_image_are_a_bad_file_naming_it(tmp_path, head, body):
    path = tmp_path / "random.png"
    path.write_bytes(head + body)
    try:
        image = decode(path, 3, max_pixels=10_000)
    except BadImage as err:  # the only exception decode lets out
        assert str(err).startswith(f"{path}: ") and err.reason
    else:  # random bytes that happen to be an image: then a real one
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


@pytest.mark.slow
@settings(RANDOM, max_examples=8)
@given(kind=st.sampled_from(["ckpt_path", "init_from", "config", "weights", "image"]),
       head=st.sampled_from(MAGIC), body=st.binary(min_size=1, max_size=400))
def test_random_bytes_through_the_cli_exit_2_without_a_traceback(corpus, tmp_path, capsys, kind, head, body):
    path = tmp_path / f"random_{kind}.bin"
    path.write_bytes(head + body)
    args = {"ckpt_path": FIT + ["--ckpt_path", str(path)], "init_from": FIT + ["--model.init_from", str(path)],
            "config": ["fit", "--config", str(path)],
            "weights": ["export", str(corpus["arch"]), "--weights", str(path), "--format", "onnx",
                        "-o", str(tmp_path / "x.onnx")]}.get(kind)
    if kind == "image":
        folder = tmp_path / "imgs"
        for c in ("a", "b"):
            png(folder / c / "0.png")
        (folder / "a" / "random.png").write_bytes(head + body)
        args = fit_args(folder, tmp_path, "--data.verify", "true")
    capsys.readouterr()
    rc = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "weights_only=False" not in err
    if kind == "image" and rc == 0:
        return  # the random bytes decoded: a valid image
    assert rc == 2, err
    line = one_line(err)
    if kind != "config":  # jsonargparse words a text config that is not one; the file is named elsewhere
        assert str(path if kind != "image" else folder / "a" / "random.png") in err, line


def _alias_bomb(levels: int = 7) -> str:
    """YAML of a few hundred bytes whose aliases expand to 10**levels values."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines)


@pytest.mark.parametrize("where", ["config", "option"])
def test_an_alias_bomb_in_a_config_or_an_option_is_one_line_before_any_work(where, tmp_path, capsys):
    from conftest import time_limit

    if where == "config":
        bomb = tmp_path / "bomb.yaml"
        bomb.write_text(_alias_bomb() + "\nmodel:\n  vars: {junk: *l6}\n")
        args = ["--config", str(bomb)]
    else:
        args = ["--model.vars", "{" + ", ".join(_alias_bomb(6).splitlines()) + ", junk: *l5}"]
    with time_limit(30):  # jsonargparse would walk the expanded tree for minutes
        rc = main(["fit", "--config", "lightning_config.yaml", *args, "--trainer.default_root_dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "expands to more than 200000 values through aliases" in err
    assert err.startswith(f"{tmp_path / 'bomb.yaml'}:1:1:" if where == "config" else "<option --model.vars>:1:1:")


@pytest.mark.parametrize("options, words", [
    (["--trainer.devices", "0"], "`Trainer(devices='0')` value is not a valid input"),
    (["--trainer.strategy", "nonsense"], "invalid strategy name"),
    (["--trainer.accelerator", "gpu"], "gpu"),
    (["--trainer.devices", "3", "--trainer.accelerator", "gpu"], "gpu"),
])
def test_lightning_option_mistakes_are_one_line_and_exit_2(options, words, tmp_path, capsys):
    import torch

    if "gpu" in options and torch.cuda.is_available():
        pytest.skip("on a machine with a GPU these options are not mistakes")
    rc = main(["fit", "--config", "lightning_config.yaml", *options, "--trainer.fast_dev_run", "true",
               "--trainer.default_root_dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("error: trainer options: ") and words in err[-1], err
    assert not any("Traceback" in line for line in err)


@pytest.fixture(scope="module")
def zip_bomb(tmp_path_factory) -> Path:
    """A PyTorch file whose records are deflated: 32 MB of zeros in a file of a few tens of KB (a
    real bomb declares GBs the same way)."""
    import zipfile

    import torch

    folder = tmp_path_factory.mktemp("bomb")
    plain = folder / "plain.pt"
    torch.save({"conv1.conv.weight": torch.zeros(8 * 2**20)}, plain)
    bomb = folder / "bomb.pt"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
    assert bomb.stat().st_size < 2**20
    return bomb


@pytest.mark.parametrize("command", ["export", "init_from", "import-weights", "ensemble"])
def test_a_compressed_checkpoint_is_refused_before_it_is_inflated(command, zip_bomb, tmp_path, capsys):
    from pipeline.checkpoints import declared_bytes

    assert declared_bytes(zip_bomb) >= 32 * 2**20  # what it would take in memory
    args = {"export": ["export", "architectures/lenet5.yaml", "--weights", str(zip_bomb), "--format", "torchscript",
                       "-o", str(tmp_path / "x.pt")],
            "init_from": ["fit", "--config", "lightning_config.yaml", "--model.init_from", str(zip_bomb),
                          "--trainer.fast_dev_run", "true", "--trainer.default_root_dir", str(tmp_path)],
            "import-weights": ["import-weights", "torchvision:resnet18", "architectures/resnet18.yaml", "-o",
                               str(tmp_path / "x.pt"), "--from-file", str(zip_bomb)],
            "ensemble": ["test", "--config", "lightning_config.yaml", "--ensemble.checkpoints", f"[{zip_bomb}]",
                         "--trainer.default_root_dir", str(tmp_path)]}[command]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "compressed, which torch.save never writes" in err[-1] and str(zip_bomb) in err[-1], err
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("options, words", [
    (["--data.image_size", "100000"], "node 'conv1' alone outputs 32x100000x100000 per sample"),
    (["--model.arch", "UPSAMPLE"], "node 'up' alone outputs 1x160000x160000 per sample"),
])
def test_a_run_that_cannot_fit_in_memory_is_refused_before_any_allocation(options, words, tmp_path, capsys,
                                                                          monkeypatch):
    import math

    import torch

    from conftest import time_limit

    # a machine with overcommit off refuses a 40 GB tensor at once; this one might hand out pages lazily: make any
    # large real tensor fail loudly here too, so an allocation before the check is seen everywhere (the planner's
    # meta tensors cost nothing and pass)
    from torch.utils._device import _device_constructors

    _device_constructors()  # cached with the real functions before they are wrapped
    for name in ("zeros", "empty", "ones", "randn", "rand"):
        real = getattr(torch, name)

        def guarded(*size, _real=real, _name=name, **kw):
            dims = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else size
            device = torch.device(kw.get("device") or torch.get_default_device())
            if device.type != "meta" and all(isinstance(d, int) for d in dims) and math.prod(dims) > 2**28:
                raise AssertionError(f"torch.{_name}{tuple(dims)} before the memory check")
            return _real(*size, **kw)

        monkeypatch.setattr(torch, name, guarded)
    up = tmp_path / "up.yaml"
    up.write_text("input: [1, 8, 8]\nvars: {classes: 10}\nnodes:\n  up: {block: upsample, scale: 20000}\n"
                  "  pool: global_pool\n  fc: {block: linear, out: classes}\n")
    options = [str(up) if o == "UPSAMPLE" else o for o in options]
    with time_limit(60):  # not minutes of decoding into swap
        rc = main(["fit", "--config", "lightning_config.yaml", *options, "--trainer.default_root_dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and words in err[-1] and "GB available" in err[-1] and "--memory_check false" in err[-1], err
    assert not list(tmp_path.glob("version_*"))


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_an_architecture_or_config_that_is_not_a_regular_file_is_refused(kind, tmp_path, capsys):
    import os

    from conftest import time_limit

    path = Path("/dev/zero") if kind == "device" else tmp_path / "pipe.yaml"
    if kind == "fifo":
        os.mkfifo(path)
    with time_limit(30):  # not read until memory runs out, not blocked on the pipe
        assert main(["summary", str(path)]) == 2
        assert main(["fit", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == f"{path}: not a regular file (a device, a pipe or a socket); expected an architecture file"
    assert err[1] == f"error: --config {path}: not a regular file; expected a YAML config file"


def test_summary_of_the_timm_backbone_at_a_small_input(capsys):
    assert main(["summary", "architectures/timm_resnet18_backbone.yaml", "--input", "3,32,32"]) == 0
    assert "receptive field" in capsys.readouterr().out


@pytest.mark.parametrize("text, where, code", [("\x01", "1:1", "U+0001"), ("a: 1\nb: \"x\x02\"\n", "2:6", "U+0002")])
def test_a_control_character_in_a_config_is_one_line_with_its_place(text, where, code, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    assert main(["fit", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{config}:{where}: invalid YAML: unacceptable control character {code}; "
                   "YAML text allows tab, newline and printable characters only"], err
