"""Own images, end to end: the README's one-line `fit` on a folder of 28x28 grey digit PNGs vs a bare
PyTorch loop over in-memory tensors with the same YAML-built LeNet-5, optimizer and schedule.

    python benchmarks/bench_own_data.py [--epochs 10] [--root FOLDER] [--threads N]

The folder (4,000 train / 1,000 val PNGs in train/<digit>, val/<digit>) is generated from
scikit-learn's digits (tests/digit_folder.py) unless --root names one. Both sides run in this
process, one after the other, on the same data, seed and thread count. Reported for each: start-up
(pipeline: from the call to the first training batch, i.e. configuration, folder scan, decoding, data
table, sanity check; loop: decoding the PNGs into tensors and building the net), training wall (all
epochs, each with its validation pass) and final val/acc; then the ratio of the training walls and
the accuracy gap.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

COMMAND = ("fit --config lightning_config.yaml --data datamodules.ImageFolderDataModule --data.root {root} "
           "--model.arch architectures/lenet5.yaml")
MARKS: dict[str, float] = {}


def _timer_class():
    from lightning.pytorch import Callback

    class Timer(Callback):
        """Marks the first training batch and the end of fit (read by this script)."""

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            MARKS.setdefault("train_start", time.perf_counter())

        def on_fit_end(self, trainer, pl_module):
            MARKS["fit_end"] = time.perf_counter()

    return Timer


def pipeline_run(root: Path, epochs: int, workdir: Path) -> dict:
    import bench_own_data  # this file as an importable module: the CLI instantiates its Timer by path

    from pipeline.cli import main

    bench_own_data.Timer = bench_own_data._timer_class()  # its MARKS, not __main__'s
    bench_own_data.MARKS.clear()
    args = COMMAND.format(root=root).split() + [
        "--trainer.max_epochs", str(epochs), "--trainer.default_root_dir", str(workdir / "run"),
        "--trainer.enable_progress_bar", "false", "--trainer.callbacks+", "bench_own_data.Timer"]
    start = time.perf_counter()
    rc = main(args)
    end = time.perf_counter()
    if rc != 0:
        raise SystemExit(f"pipeline fit failed with status {rc}")
    marks = bench_own_data.MARKS
    import csv

    rows = list(csv.DictReader(open(sorted((workdir / "run").glob("version_*/metrics.csv"))[-1])))
    acc = [float(r["val/acc"]) for r in rows if r.get("val/acc")][-1]
    return {"startup": marks["train_start"] - start, "train": marks["fit_end"] - marks["train_start"],
            "total": end - start, "acc": acc}


def bare_loop(root: Path, epochs: int) -> dict:
    """The reference: tensors in memory, the YAML-built net, the config's SGD + warmup/cosine, no Lightning."""
    import cv2
    import numpy as np
    import torch
    import torch.nn.functional as F
    import yaml

    from pipeline.language import build_model
    from pipeline.training.optim import (OptimizerConfig, SchedulerConfig, build_optimizer, build_scheduler,
                                         param_groups)

    config = yaml.safe_load((ROOT / "lightning_config.yaml").read_text())
    start = time.perf_counter()
    torch.manual_seed(config["seed_everything"])

    def load(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        classes = sorted(p.name for p in (root / split).iterdir() if p.is_dir())
        images, labels = [], []
        for label, name in enumerate(classes):
            for path in sorted((root / split / name).iterdir()):
                image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
                images.append(cv2.resize(image, (32, 32), interpolation=cv2.INTER_LINEAR))
                labels.append(label)
        x = torch.from_numpy(np.stack(images)[:, None]).float() / 255.0
        return (x - 0.5) / 0.5, torch.tensor(labels)

    train_x, train_y = load("train")
    val_x, val_y = load("val")
    net = build_model(ROOT / "architectures" / "lenet5.yaml")
    batch = 64
    steps = len(train_x) // batch
    opt_cfg = OptimizerConfig(**config["model"]["optimizer"])
    optimizer = build_optimizer(param_groups(list(net.named_parameters()), opt_cfg), opt_cfg)
    scheduler = build_scheduler(optimizer, SchedulerConfig(**config["model"]["scheduler"]), steps * epochs)
    scheduler = scheduler["scheduler"] if isinstance(scheduler, dict) else scheduler
    generator = torch.Generator().manual_seed(0)
    train_start = time.perf_counter()
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(train_x), generator=generator)
        for i in range(steps):
            index = order[i * batch:(i + 1) * batch]
            loss = F.cross_entropy(net(train_x[index]), train_y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        net.eval()
        with torch.no_grad():
            correct = sum((net(val_x[i:i + batch]).argmax(1) == val_y[i:i + batch]).sum().item()
                          for i in range(0, len(val_x), batch))
    end = time.perf_counter()
    return {"startup": train_start - start, "train": end - train_start, "total": end - start,
            "acc": correct / len(val_x)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--root", help="an existing train/ val/ folder (default: generate one)")
    parser.add_argument("--threads", type=int, help="torch threads for both sides (default: torch's)")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    import lightning  # noqa: F401  imported before either side is timed

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root) if args.root else None
        if root is None:
            from digit_folder import make_digit_folder

            root = make_digit_folder(Path(tmp) / "digits", train=4000, val=1000, size=28)
        import os

        os.chdir(ROOT)
        bare = bare_loop(root, args.epochs)
        print(f"bare loop: {bare}", flush=True)
        ours = pipeline_run(root, args.epochs, Path(tmp))
    print(f"\n{'':<22}{'start-up s':>11}{'train s':>9}{'total s':>9}{'val/acc':>9}")
    for name, r in (("bare PyTorch loop", bare), ("pipeline fit (README)", ours)):
        print(f"{name:<22}{r['startup']:>11.1f}{r['train']:>9.1f}{r['total']:>9.1f}{r['acc']:>9.4f}")
    print(f"training wall ratio pipeline/loop: {ours['train'] / bare['train']:.2f}x; "
          f"val/acc gap: {100 * (ours['acc'] - bare['acc']):+.2f} points; torch threads {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
