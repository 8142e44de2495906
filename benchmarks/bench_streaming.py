"""StreamingDataModule (LitData chunks) against ImageFolderDataModule on the same JPEGs, side by side.

    python benchmarks/bench_streaming.py [--images 2000] [--size 64] [--workers 0] [--rounds 3]
    python benchmarks/bench_streaming.py --images 50000 --size 32 --rounds 1 --startup-only
    python benchmarks/bench_streaming.py --fit      # val/acc of `fit` on both, the same digit folder

Per round (A/B alternating, medians printed as Markdown): start-up (constructor, setup, loader, first
batch), images/s over one training epoch (the `light` preset, batch 64), and the files opened in that
epoch (Python's `open` audit events, loader workers 0). The folder module runs with ``cache_bytes=0``:
it reads every file every epoch, as it must when the images do not fit in memory. The streaming module
runs in place (local chunks, memory-mapped) and through LitData's cache (``local:``, chunks copied
into ``cache_dir`` as from a bucket): cold (empty cache) and warm (the same cache, next epoch).
Local files come from the page cache for both modules: the figures show per-file overhead, not the
network's latency, which only makes small files slower.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

OPENED = [0]


def _count_opens(event: str, args) -> None:
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        OPENED[0] += 1


def make_jpegs(root: Path, count: int, size: int, classes: int = 10) -> None:
    import cv2

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(count):
        c, split = i % classes, "val" if (i // classes) % 10 == 0 else "train"
        base = np.stack([(xx * (c + 1) + yy) % 255, (yy * 3 + 25 * c) % 255, (xx * yy / 9) % 255], -1)
        image = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        path = root / split / f"class{c}" / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])


def folder_module(root: Path, size: int, workers: int, batch: int):
    from datamodules import ImageFolderDataModule

    return ImageFolderDataModule(str(root), image_size=size, channels=3, batch_size=batch, num_workers=workers,
                                 cache_bytes=0, show_table=False, train_transforms="light")


def streaming_module(input_dir: str, size: int, workers: int, batch: int, cache_dir: str | None = None):
    from datamodules import StreamingDataModule

    return StreamingDataModule(input_dir, cache_dir=cache_dir, image_size=size, channels=3, batch_size=batch,
                               num_workers=workers, show_table=False, train_transforms="light")


def measure(make, epochs: int = 1, startup_only: bool = False) -> dict[str, float]:
    """Start-up to the first batch, then images/s of each further epoch (the first epoch's rest included)."""
    start = time.perf_counter()
    module = make()
    module.setup("fit")
    loader = module.train_dataloader()
    out: dict[str, float] = {}
    for epoch in range(epochs):
        t0, images, opened = time.perf_counter(), 0, OPENED[0]
        for images_batch, _, _ in loader:
            if "startup" not in out:
                out["startup"] = time.perf_counter() - start
                if startup_only:
                    return out
            images += len(images_batch)
        out[f"ips{epoch}"] = images / (time.perf_counter() - t0)
        out[f"opened{epoch}"] = OPENED[0] - opened
    return out


def benchmark(args) -> None:
    from datamodules.optimize import optimize_folder

    work = Path(tempfile.mkdtemp(prefix="bench-streaming-"))
    try:
        root, out = work / "jpegs", work / "optimized"
        t0 = time.perf_counter()
        make_jpegs(root, args.images, args.size)
        made = time.perf_counter() - t0
        t0 = time.perf_counter()
        optimize_folder(str(root), str(out), workers=args.optimize_workers)
        optimized = time.perf_counter() - t0
        size_files = sum(p.stat().st_size for p in root.rglob("*.jpg"))
        size_chunks = sum(p.stat().st_size for p in out.rglob("*.bin"))
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in ("folder", "streaming", "cached")}
        sys.addaudithook(_count_opens)
        for round_ in range(args.rounds):
            cache = work / f"cache{round_}"
            order = [("folder", lambda: folder_module(root, args.size, args.workers, args.batch)),
                     ("streaming", lambda: streaming_module(str(out), args.size, args.workers, args.batch)),
                     ("cached", lambda: streaming_module(f"local:{out}", args.size, args.workers, args.batch,
                                                         str(cache)))]
            for name, make in (order if round_ % 2 == 0 else order[::-1]):
                runs[name].append(measure(make, epochs=2, startup_only=args.startup_only))
            shutil.rmtree(cache, ignore_errors=True)
        report(args, runs, made, optimized, size_files, size_chunks)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(args, runs, made: float, optimized: float, size_files: int, size_chunks: int) -> None:
    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    print(f"\n{args.images} JPEGs {args.size}x{args.size} (10 classes, 10% val) made in {made:.1f} s; "
          f"`data optimize --workers {args.optimize_workers}` {optimized:.1f} s; files {size_files / 2**20:.1f} MiB, "
          f"chunks {size_chunks / 2**20:.1f} MiB; loader workers {args.workers}, batch {args.batch}, "
          f"{args.rounds} round(s); load average before: {os.getloadavg()[0]:.2f}\n")
    names = {"folder": "ImageFolderDataModule (cache_bytes=0)", "streaming": "StreamingDataModule, in place",
             "cached": "StreamingDataModule via cache (`local:`)"}
    if args.startup_only:
        print("| module | start-up to first batch (s) |\n|---|---:|")
        for name in runs:
            print(f"| {names[name]} | {med(name, 'startup'):.2f} |")
        return
    print("| module | start-up to first batch (s) | images/s, epoch 1 | images/s, epoch 2 | files opened per epoch |")
    print("|---|---:|---:|---:|---:|")
    for name in runs:
        cold = " (cold cache)" if name == "cached" else ""
        opened = "n/a (workers)" if args.workers else f"{med(name, 'opened1'):.0f}"
        print(f"| {names[name]} | {med(name, 'startup'):.2f} | {med(name, 'ips0'):.0f}{cold} | "
              f"{med(name, 'ips1'):.0f} | {opened} |")
    folder = med("folder", "ips1")
    print(f"\nratios, epoch 2 images/s against the folder module: in place {med('streaming', 'ips1') / folder:.2f}, "
          f"via cache (warm) {med('cached', 'ips1') / folder:.2f}, via cache (cold, epoch 1) "
          f"{med('cached', 'ips0') / med('folder', 'ips0'):.2f}")


def fit_accuracy(args) -> None:
    """`fit` on the folder module and on its optimized copy: the same net, schedule and seed."""
    from conftest import run_cli
    from digit_folder import make_digit_folder
    from datamodules.optimize import optimize_folder

    work = Path(tempfile.mkdtemp(prefix="bench-streaming-fit-"))
    try:
        root = make_digit_folder(work / "digits", train=2000, val=500, size=16)
        optimize_folder(str(root), str(work / "optimized"))
        common = ["--config", str(ROOT / "lightning_config.yaml"), "--trainer.max_epochs", str(args.epochs),
                  "--trainer.enable_progress_bar", "false", "--data.num_workers", "0"]
        data = {"folder": ["--data", "datamodules.ImageFolderDataModule", "--data.root", str(root)],
                "streaming": ["--data", "datamodules.StreamingDataModule", "--data.input_dir",
                              str(work / "optimized")]}
        print("| data | val/acc after fit | test acc (`test --ckpt_path last`) | fit wall (s) |\n|---|---:|---:|---:|")
        for name, options in data.items():
            run = work / f"run-{name}"
            t0 = time.perf_counter()
            fit = run_cli("fit", *common, *options, "--trainer.default_root_dir", str(run))
            wall = time.perf_counter() - t0
            assert fit.returncode == 0, fit.stderr[-2000:]
            import csv

            rows = [r for p in run.rglob("metrics.csv") for r in csv.DictReader(p.open()) if r.get("val/acc")]
            test = run_cli("test", *common, *options, "--trainer.default_root_dir", str(run), "--ckpt_path", "last")
            acc = re.search(r"test/acc\D*([0-9.]+)", test.stdout)
            test_acc = float(acc.group(1)) if acc else float("nan")
            print(f"| {name} | {float(rows[-1]['val/acc']):.4f} | {test_acc:.4f} | {wall:.0f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0, help="loader worker processes (files opened: 0 only)")
    parser.add_argument("--optimize-workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--startup-only", action="store_true")
    parser.add_argument("--fit", action="store_true", help="compare fit's accuracy instead")
    parser.add_argument("--epochs", type=int, default=4, help="with --fit")
    args = parser.parse_args()
    fit_accuracy(args) if args.fit else benchmark(args)


if __name__ == "__main__":
    main()
