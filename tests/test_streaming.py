"""Data at scale (issue 24): `pipeline data optimize` writes LitData chunks from a folder, and
StreamingDataModule reads them back like the folder module: the same pixels and labels, every sample
once per epoch across ranks, an interrupted epoch continued from the checkpoint, bad data named."""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import cv2
import pytest
import torch

from conftest import run_cli
from digit_folder import make_digit_folder
from test_scale import jobs, wait_for  # noqa: F401  (jobs: a fixture)

ROOT = Path(__file__).resolve().parents[1]

# the README's commands, run verbatim (with the folders moved to the test's own)
OPTIMIZE = "python -m pipeline data optimize --root my_images --out my_images_optimized --workers 8"
FIT = "python -m pipeline fit --config lightning_config.yaml --data datamodules.StreamingDataModule --data.input_dir my_images_optimized --model.arch architectures/lenet5.yaml"  # noqa: E501
TRAIN, VAL = 48, 16


def readme_args(command: str, root: Path, out: Path, *extra: str) -> list[str]:
    """A README command's arguments with its folders moved to the test's; one worker process where the
    README says 8 (two cores, shared with the other tests)."""
    args = command.split()[3:]
    args = [str(root) if a == "my_images" else str(out) if a == "my_images_optimized" else a for a in args]
    return [("1" if a == "8" and args[i - 1] == "--workers" else a) for i, a in enumerate(args)] + list(extra)


@pytest.fixture(scope="module")
def optimized(tmp_path_factory) -> tuple[Path, Path]:
    """A digit folder (root/train/<digit>, root/val/<digit>, 16x16 PNGs) and its optimized copy."""
    folder = tmp_path_factory.mktemp("streaming")
    root = make_digit_folder(folder / "digits", train=TRAIN, val=VAL, size=16)
    out = folder / "optimized"
    result = run_cli(*readme_args(OPTIMIZE, root, out))
    assert result.returncode == 0, result.stderr[-3000:]
    return root, out


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    return [line for line in err.strip().splitlines() if line.strip()][-1]


def modules(root: Path, out: Path, **args):
    from datamodules import ImageFolderDataModule, StreamingDataModule

    common = dict(image_size=16, channels=1, batch_size=8, num_workers=0, show_table=False, **args)
    return ImageFolderDataModule(str(root), cache_bytes=0, **common), StreamingDataModule(str(out), **common)


# -- the round trip -------------------------------------------------------------------------------

def names(streaming, split: str) -> list[str]:
    """The source file of each position of a split (the raw sample, before decoding)."""
    from litdata import StreamingDataset

    chunks = streaming.chunks(split, None, train=False)
    return [StreamingDataset.__getitem__(chunks, i)["name"] for i in range(len(chunks))]


def same_samples(folder, streaming, root: Path, split: str) -> int:
    """Each position of the streaming split against the folder module's sample of the same file."""
    chunks, files = streaming.chunks(split, streaming.eval_transform(), train=False), folder.eval_dataset(split)
    where = {str(p.relative_to(root)): i for i, (p, _) in enumerate(folder.items[split])}
    order = [where[name] for name in names(streaming, split)]
    assert sorted(order) == list(range(len(files)))  # every file once
    for position, i in enumerate(order):
        image, label, bad = chunks[position]
        expected, expected_label, _ = files[i]
        assert bad is None and label == expected_label and torch.equal(image, expected), (split, position)
    return len(order)


def test_streaming_gives_the_folder_modules_pixels_labels_and_names(optimized):
    root, out = optimized
    folder, streaming = modules(root, out, train_transforms="none")
    folder.setup("fit"), streaming.setup("fit")
    assert streaming.class_names == folder.class_names and streaming.num_classes == 10
    assert same_samples(folder, streaming, root, "train") == TRAIN
    assert same_samples(folder, streaming, root, "val") == VAL
    # written in a seeded random order, not class after class (LitData shuffles only within chunks)
    labels = [label for _, label, _ in streaming.chunks("train", streaming.eval_transform(), train=False)]
    assert labels != sorted(labels)
    # the decoded pixels themselves, before any transform: bit-equal to decoding the file
    from datamodules.decode import decode, decode_bytes

    first = folder.items["val"][0][0]
    assert (decode_bytes(memoryview(first.read_bytes()), "x", 1) == decode(first, 1)).all()
    assert streaming.predict_names() == names(streaming, "val")
    # evaluation: every validation sample once, in the dataset's order
    batches = list(streaming.val_dataloader())
    by_name = {str(p.relative_to(root)): label for p, label in folder.items["val"]}
    assert torch.cat([b[1] for b in batches]).tolist() == [by_name[n] for n in streaming.predict_names()]


def test_jpegs_round_trip_bit_equal(tmp_path):
    """JPEG bytes come back from the chunks as they went in (LitData hands out memoryviews)."""
    import numpy as np

    from datamodules import ImageFolderDataModule

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        for i in range(3):
            (tmp_path / "jpegs" / c).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(tmp_path / "jpegs" / c / f"{i}.jpg"), rng.integers(0, 255, (12, 10, 3), np.uint8))
    assert run_cli("data", "optimize", "--root", str(tmp_path / "jpegs"), "--out", str(tmp_path / "out"),
                   "--val-fraction", "0.5").returncode == 0
    _, streaming = modules(tmp_path / "jpegs", tmp_path / "out", train_transforms="none")
    folder = ImageFolderDataModule(str(tmp_path / "jpegs"), image_size=16, channels=1, val_fraction=0.5,
                                   train_transforms="none", show_table=False)
    folder.setup("fit"), streaming.setup("fit")
    assert same_samples(folder, streaming, tmp_path / "jpegs", "train") == 3
    assert same_samples(folder, streaming, tmp_path / "jpegs", "val") == 3


def test_chunks_from_elsewhere_go_through_the_cache(optimized, tmp_path):
    """``local:`` makes LitData fetch chunks into ``cache_dir`` as it does from a bucket."""
    root, out = optimized
    from datamodules import StreamingDataModule

    cached = StreamingDataModule(f"local:{out}", cache_dir=str(tmp_path / "cache"), image_size=16, channels=1,
                                 num_workers=0, show_table=False, batch_size=TRAIN)
    cached.setup("fit")
    folder = modules(root, out)[0]
    folder.setup("fit")
    assert sorted(sum((b[1].tolist() for b in cached.train_dataloader()), [])) == \
        sorted(label for _, label in folder.items["train"])
    assert {p.name for p in (tmp_path / "cache" / "train").rglob("chunk-*.bin")} == \
        {p.name for p in (out / "train").glob("chunk-*.bin")}


def test_an_epoch_is_every_sample_once_and_a_loader_state_resumes_it(optimized):
    _, streaming = modules(*optimized)
    streaming.setup("fit")

    def positions(loader, stop=None):
        seen = []
        for images, labels, bad in loader:
            assert not bad and images.shape[1:] == (1, 16, 16)
            seen.append(labels.tolist())
            if stop and len(seen) == stop:
                break
        return seen

    def loader():
        made = streaming.train_dataloader()
        made.dataset.labels_are_indices = True  # positions instead of labels, to count samples
        return made

    whole = positions(loader())
    assert sorted(sum(whole, [])) == list(range(TRAIN))
    interrupted = loader()
    first = positions(interrupted, stop=2)
    state = interrupted.state_dict()
    resumed = loader()
    resumed.load_state_dict(state)
    rest = positions(resumed)
    assert first + rest == whole  # the same order, continued where it stopped: nothing repeated or skipped


def test_two_ranks_share_an_epoch_each_sample_once(optimized):
    """LitData splits the chunks across ranks (it reads the rank when the dataset is made, as under
    torchrun or Lightning's DDP); here the two ranks' datasets are made with rank 0 and rank 1."""
    from litdata.utilities.env import _DistributedEnv

    _, streaming = modules(*optimized)
    shares = []
    for rank in (0, 1):
        chunks = streaming.chunks("train", streaming.eval_transform(), train=True)
        chunks.distributed_env = _DistributedEnv(world_size=2, global_rank=rank, num_nodes=1)
        chunks.drop_last = True  # LitData's default under DDP: equal shares, so collectives never wait
        chunks.labels_are_indices = True
        shares.append([label for _, label, _ in chunks])
    assert len(shares[0]) == len(shares[1]) == TRAIN // 2
    assert sorted(shares[0] + shares[1]) == list(range(TRAIN))


# -- optimize: reruns, other datasets, bad files -----------------------------------------------------

def test_optimize_again_does_nothing_and_never_overwrites_another_dataset(optimized, tmp_path):
    root, out = optimized
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = run_cli("data", "optimize", "--root", str(root), "--out", str(out))
    assert again.returncode == 0 and "already optimized" in again.stderr
    other = tmp_path / "other"
    shutil.copytree(root, other)
    changed = next((other / "train").rglob("*.png"))
    cv2.imwrite(str(changed), 255 - cv2.imread(str(changed)))  # one image changed, names and sizes kept
    refused = run_cli("data", "optimize", "--root", str(other), "--out", str(out))
    assert refused.returncode == 2 and "holds another dataset" in one_line(refused.stderr)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # nothing written over
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    busy = run_cli("data", "optimize", "--root", str(root), "--out", str(tmp_path / "busy"))
    assert busy.returncode == 2 and "not empty" in one_line(busy.stderr)


def test_an_interrupted_optimize_is_refused_for_training_then_finished_by_running_it_again(optimized, tmp_path):
    root, out = optimized
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    manifest = json.loads((copy / "dataset.json").read_text())
    (copy / "dataset.json").write_text(json.dumps({**manifest, "complete": False}))
    shutil.rmtree(copy / "val")  # stopped after the training split
    train = {p: p.stat().st_mtime_ns for p in (copy / "train").iterdir()}
    stopped = run_cli(*tiny_fit(copy, tmp_path))
    assert stopped.returncode == 2 and "incomplete (optimize was interrupted)" in one_line(stopped.stderr)
    again = run_cli("data", "optimize", "--root", str(root), "--out", str(copy))
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in (copy / "train").iterdir()} == train  # kept, not rewritten
    assert json.loads((copy / "dataset.json").read_text()) == manifest
    chunks = [json.loads((folder / "val" / "index.json").read_text())["chunks"] for folder in (copy, out)]
    assert chunks[0] == chunks[1]  # the same samples in the same chunks


def test_optimize_stops_at_a_bad_file_or_skips_and_lists_it(tmp_path):
    root = make_digit_folder(tmp_path / "digits", train=40, val=4, size=16)
    broken = next((root / "train").rglob("*.png"))
    broken.write_bytes(broken.read_bytes()[:40])  # truncated
    stopped = run_cli("data", "optimize", "--root", str(root), "--out", str(tmp_path / "out"))
    assert stopped.returncode == 2 and "Traceback" not in stopped.stderr
    assert "1 bad file(s)" in stopped.stderr and f"{broken}:" in stopped.stderr
    assert not (tmp_path / "out").exists()
    skipped = run_cli("data", "optimize", "--root", str(root), "--out", str(tmp_path / "out"), "--skip-bad")
    assert skipped.returncode == 0, skipped.stderr[-2000:]
    assert f"skipped {broken}" in skipped.stderr
    manifest = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert manifest["splits"]["train"] == 39
    assert manifest["skipped"] == [[str(broken), "not an image (cannot identify the format)"]]


def test_a_usage_mistake_is_one_line():
    result = run_cli("data", "optimize", "--root", "x")
    assert result.returncode == 2 and "--out" in one_line(result.stderr)


# -- bad optimized data: one line naming the chunk or sample, exit 2 ------------------------------------

def tiny_fit(out: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["fit", "--config", str(ROOT / "lightning_config.yaml"), "--data", "datamodules.StreamingDataModule",
            "--data.input_dir", str(out), "--data.num_workers", "0", "--data.batch_size", "8",
            "--data.show_table", "false", "--model.arch", str(ROOT / "architectures" / "lenet5.yaml"),
            "--model.scheduler.warmup", "0", "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "1",
            "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.enable_progress_bar", "false", *extra]


def damaged(out: Path, tmp_path: Path, damage) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    damage(copy)
    return copy


def first_chunk(copy: Path) -> Path:
    return copy / "train" / json.loads((copy / "train" / "index.json").read_text())["chunks"][0]["filename"]


def garble_images(copy: Path) -> None:  # same size, but no sample of the chunk is a PNG any more
    chunk = first_chunk(copy)
    chunk.write_bytes(chunk.read_bytes().replace(b"\x89PNG", b"JUNK"))


@pytest.mark.parametrize("damage, expected", [
    (lambda copy: first_chunk(copy).unlink(), r"chunk-\d+-\d+\.bin: missing chunk"),
    (lambda copy: first_chunk(copy).write_bytes(first_chunk(copy).read_bytes()[:100]),
     r"chunk-\d+-\d+\.bin: corrupt chunk \(100 bytes"),
    (lambda copy: (copy / "dataset.json").unlink(), "not an optimized dataset"),
    (garble_images, r"chunk-\d+-\d+\.bin sample \d+ \(train/\d/\d+\.png\): cannot decode image"),
], ids=["missing-chunk", "truncated-chunk", "not-optimized", "undecodable-sample"])
def test_bad_optimized_data_is_one_line_naming_it(optimized, tmp_path, damage, expected):
    import re

    copy = damaged(optimized[1], tmp_path, damage)
    result = run_cli(*tiny_fit(copy, tmp_path, "--trainer.max_steps", "2"))
    assert result.returncode == 2, result.stderr[-3000:]
    assert re.search(expected, one_line(result.stderr)), one_line(result.stderr)


# -- training through the CLI ------------------------------------------------------------------------

def test_fit_and_test_on_the_streaming_module(optimized, tmp_path):
    root, out = optimized
    fit = run_cli(*readme_args(FIT, root, out), "--data.num_workers", "0", "--data.batch_size", "16",
                  "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(tmp_path / "run"),
                  "--trainer.enable_progress_bar", "false")
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "10 classes" in fit.stdout  # the data table, from dataset.json
    last = next((tmp_path / "run").rglob("last.ckpt"))
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["StreamingDataModule"]["class_names"] == [str(d) for d in range(10)]
    # the loader's position travels with it (pipeline/training/fault.py)
    state = next(v for k, v in checkpoint["callbacks"].items() if "FaultTolerance" in k)
    assert state["train_loader"]["dataset"]["input_dir_path"] == str(out / "train")
    config = str(next((tmp_path / "run").rglob("config.yaml")))
    test = run_cli("test", "--config", config, "--ckpt_path", str(last), "--eval.crops", "ten")  # multi-crop
    assert test.returncode == 0, test.stderr[-3000:]
    predict = run_cli("predict", "--config", config, "--ckpt_path", str(last), "--eval.report_dir", str(tmp_path))
    assert predict.returncode == 0, predict.stderr[-3000:]
    rows = next(tmp_path.glob("predict*.csv")).read_text().splitlines()[1:]
    expected = sorted(str(p.relative_to(root)) for p in (root / "val").rglob("*.png"))
    assert sorted(row.split(",")[0] for row in rows) == expected  # predictions named by file


@pytest.mark.slow
def test_kill_9_mid_epoch_then_resume_gives_the_uninterrupted_weights(optimized, tmp_path, jobs):  # noqa: F811
    """A hard kill in the middle of the second epoch; `--ckpt_path last` continues the epoch from the
    loader's saved position and ends with the weights of the run that was never interrupted."""
    _, out = optimized
    common = tiny_fit(out, tmp_path, "--trainer.max_epochs", "2", "--fault_tolerance.every_n_steps", "4",
                      "--trainer.deterministic", "true", "--trainer.limit_val_batches", "0",
                      "--data.train_transforms", "light")[1:]  # 6 steps an epoch: killed at 8, saved at 8 - 1
    beacon = tmp_path / "beacon"
    callbacks = tmp_path / "beacon.yaml"
    callbacks.write_text(json.dumps({"trainer": {"callbacks": [
        {"class_path": "tests.fault_injection.Beacon",
         "init_args": {"folder": str(beacon), "step": 9, "hold": 300}}]}}))
    killed_root = tmp_path / "killed"
    args = [a if a != str(tmp_path / "run") else str(killed_root) for a in common]
    job = jobs([sys.executable, "-m", "pipeline", "fit", *args, "--config", str(callbacks)], tmp_path / "killed.log")
    wait_for(beacon / "rank0", job)
    os.killpg(job.proc.pid, signal.SIGKILL)
    job.proc.wait(30)
    try:
        resumed = run_cli("fit", *args, "--ckpt_path", "last")
        whole = run_cli("fit", *[a if a != str(tmp_path / "run") else str(tmp_path / "whole") for a in common])
    finally:
        torch.use_deterministic_algorithms(False)  # --trainer.deterministic sets it for the whole process
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert "Restored all states from the checkpoint" in resumed.stderr

    def final(root: Path) -> dict:
        found = sorted(root.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)[-1]
        return torch.load(found, weights_only=True)

    a, b = final(killed_root), final(tmp_path / "whole")
    assert a["global_step"] == b["global_step"] == 12
    for key in b["state_dict"]:
        assert torch.allclose(a["state_dict"][key].float(), b["state_dict"][key].float(), atol=1e-6), key


@pytest.mark.slow
def test_two_gloo_processes_read_every_sample_once_per_epoch(optimized, tmp_path, jobs):  # noqa: F811
    _, out = optimized
    probe = tmp_path / "probe.yaml"
    probe.write_text(json.dumps({"trainer": {"callbacks": [
        {"class_path": "tests.streaming_probe.SamplesRead", "init_args": {"folder": str(tmp_path / "seen")}}]}}))
    args = tiny_fit(out, tmp_path, "--trainer.max_epochs", "2", "--trainer.limit_val_batches", "0",
                    "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu",
                    "--config", str(probe))
    job = jobs([sys.executable, "-m", "pipeline", *args], tmp_path / "ddp.log")
    assert job.wait(120) == 0, job.text()[-3000:]
    ranks = [json.loads((tmp_path / "seen" / f"rank{r}.json").read_text()) for r in (0, 1)]
    for epoch in ("0", "1"):  # 48 samples, 2 processes x batches of 8: nothing left over
        assert len(ranks[0][epoch]) == len(ranks[1][epoch]) == TRAIN // 2
        assert sorted(ranks[0][epoch] + ranks[1][epoch]) == list(range(TRAIN))
    assert ranks[0]["0"] != ranks[0]["1"]  # reshuffled every epoch
