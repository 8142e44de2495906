"""The pipeline's cost per step: `python -m pipeline fit` against a bare PyTorch loop with the same net,
data, augmentation, optimizer and schedule, and where the difference goes.

    python benchmarks/bench_step_cost.py [--jobs digits resnet20] [--epochs 4] [--rounds 3] [--threads 1]

Jobs: ``digits`` is the default job (`fit --config lightning_config.yaml`: the embedded digits at 16x16,
architectures/digits_aux.yaml with its auxiliary head weighted 0.3, channels-last); ``resnet20`` is the same
config with architectures/resnet20_cifar.yaml on the digits at 32x32. Each job runs with its augmentation
(the ``digits`` preset: resize + random affine, per sample, albumentations) and with none, so both sides have
the same augmentation. The loop uses the same ``ArrayDataset`` and albumentations pipeline in a plain
shuffled DataLoader, the same YAML-built net (same seed), loss (auxiliary heads included), SGD param groups
and warmup + cosine schedule, and one validation pass per epoch; no logging, no checkpoints.

Each round runs the loop, then the pipeline, in this process; reported: median and range over the rounds of
the training wall (first training batch to the end of fit) and the ratio, accuracy, and the pipeline's
start-up to the first batch cut into its parts. With ``--ablate`` the pipeline is also run with one feature
off at a time (loggers, learning-rate monitor, the checkpoint callbacks, last.ckpt every 50 steps) and with
the progress bar on, and ``--profile`` prints Lightning's SimpleProfiler table for one pipeline run.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

JOBS = {"digits": ("architectures/digits_aux.yaml", 16), "resnet20": ("architectures/resnet20_cifar.yaml", 32)}
ABLATIONS = {
    "as configured": [],
    "no loggers": ["--trainer.logger", "false"],          # and no lr monitor, which needs a logger
    "no lr monitor": ["--trainer.callbacks", "[]"],  # replaced below by the two checkpoint callbacks only
    "no checkpoint callbacks": [],                      # idem: only the lr monitor
    "no last.ckpt every 50 steps": ["--fault_tolerance.every_n_steps", "0"],
    "progress bar on": ["--trainer.enable_progress_bar", "true"],
}
MARKS: dict[str, float] = {}


def _timer_class():
    from lightning.pytorch import Callback

    class Timer(Callback):
        """Marks the parts of start-up and the training wall (read by this script)."""

        def __init__(self):
            MARKS["configured"] = time.perf_counter()  # the CLI instantiates callbacks with the trainer

        def setup(self, trainer, pl_module, stage):
            MARKS["data_ready"] = time.perf_counter()  # after the datamodule's setup (Lightning calls it first)

        def on_sanity_check_start(self, trainer, pl_module):
            MARKS["sanity_start"] = time.perf_counter()

        def on_sanity_check_end(self, trainer, pl_module):
            MARKS["sanity_end"] = time.perf_counter()

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            MARKS.setdefault("train_start", time.perf_counter())

        def on_fit_end(self, trainer, pl_module):
            MARKS["fit_end"] = time.perf_counter()

    return Timer


def pipeline_run(job: str, augment: bool, epochs: int, workdir: Path, extra: list[str] = (),
                 profile: bool = False) -> dict:
    import bench_step_cost  # this file as an importable module: the CLI instantiates its Timer by path

    from pipeline.cli import main

    bench_step_cost.Timer = bench_step_cost._timer_class()
    bench_step_cost.MARKS.clear()
    arch, size = JOBS[job]
    args = ["fit", "--config", "lightning_config.yaml", "--model.arch", arch, "--data.image_size", str(size),
            "--trainer.max_epochs", str(epochs), "--trainer.default_root_dir", str(workdir),
            "--trainer.enable_progress_bar", "false"]
    if not augment:
        args += ["--data.train_transforms", "none"]
    if profile:
        args += ["--trainer.profiler", "simple"]
    args += list(extra)
    args += ["--trainer.callbacks+", "bench_step_cost.Timer"]
    start = time.perf_counter()
    rc = main(args)
    if rc != 0:
        raise SystemExit(f"pipeline fit failed with status {rc}: {' '.join(args)}")
    m = bench_step_cost.MARKS
    import csv

    logs = sorted(workdir.glob("version_*/metrics.csv"))  # none when the ablation turns the loggers off
    rows = list(csv.DictReader(open(logs[-1]))) if logs else []
    acc = ([float(r["val/acc"]) for r in rows if r.get("val/acc")] or [float("nan")])[-1]
    return {"train": m["fit_end"] - m["train_start"], "acc": acc, "startup": m["train_start"] - start,
            "parts": {"configuration (parse, instantiate, plan, memory check)": m["configured"] - start,
                      "data set-up (load, split, data table, pipeline check)": m["data_ready"] - m["configured"],
                      "trainer set-up (optimizer, loggers, summary)": m["sanity_start"] - m["data_ready"],
                      "sanity check (2 validation batches)": m["sanity_end"] - m["sanity_start"],
                      "first training batch": m["train_start"] - m["sanity_end"]}}


def bare_loop(job: str, augment: bool, epochs: int) -> dict:
    """The reference: what a user writes by hand around the same net, data and optimizer."""
    import lightning as L
    import torch
    import yaml
    from torch.utils.data import DataLoader

    from datamodules import DigitsDataModule
    from datamodules.base import ArrayDataset
    from datamodules.transforms import pipeline
    from pipeline.language import materialize, plan_model
    from pipeline.training.module import classification_loss
    from pipeline.training.optim import (OptimizerConfig, SchedulerConfig, build_optimizer, build_scheduler,
                                         param_groups)

    config = yaml.safe_load((ROOT / "lightning_config.yaml").read_text())
    arch, size = JOBS[job]
    start = time.perf_counter()
    L.seed_everything(config["seed_everything"], verbose=False)
    data = DigitsDataModule(image_size=size)  # the same split and images
    data.setup("fit")
    (train_x, train_y), (val_x, val_y) = data.splits["train"], data.splits["val"]
    train = ArrayDataset(train_x, train_y, pipeline("digits" if augment else "none", size, True))
    val = ArrayDataset(val_x, val_y, pipeline("none", size, False))
    batch = config["data"]["init_args"]["batch_size"]
    train_loader = DataLoader(train, batch_size=batch, shuffle=True, drop_last=True)
    val_loader = DataLoader(val, batch_size=batch)
    net = materialize(plan_model(ROOT / arch, (1, size, size)))
    channels_last = config["model"].get("channels_last", False)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    opt_cfg = OptimizerConfig(**config["model"]["optimizer"])
    optimizer = build_optimizer(param_groups(list(net.named_parameters()), opt_cfg), opt_cfg)
    scheduler = build_scheduler(optimizer, SchedulerConfig(**config["model"]["scheduler"]),
                                len(train_loader) * epochs)
    scheduler = scheduler["scheduler"] if isinstance(scheduler, dict) else scheduler

    def prepare(images: torch.Tensor) -> torch.Tensor:
        images = data.normalize(images)
        return images.contiguous(memory_format=torch.channels_last) if channels_last else images

    train_start = time.perf_counter()
    for _ in range(epochs):
        net.train()
        for images, target in train_loader:
            loss, _ = classification_loss(net(prepare(images)), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        net.eval()
        correct = 0
        with torch.no_grad():
            for images, target in val_loader:
                correct += int((net(prepare(images)).argmax(1) == target).sum())
    end = time.perf_counter()
    return {"train": end - train_start, "acc": correct / len(val), "startup": train_start - start}


def _median_range(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both sides")
    parser.add_argument("--cpu", type=int, help="pin this process to one CPU (steadier figures with --threads 1)")
    parser.add_argument("--no-augment-rows", action="store_true", help="only the rows with augmentation")
    parser.add_argument("--ablate", action="store_true", help="also one pipeline run per feature switched off")
    parser.add_argument("--profile", action="store_true", help="Lightning's SimpleProfiler table for one run")
    args = parser.parse_args()
    import os

    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the pipeline's thread choice (threads.py) follows it
    start = time.perf_counter()
    import torch

    torch.set_num_threads(args.threads)
    import lightning  # noqa: F401  imported before either side is timed

    import pipeline.cli  # noqa: F401
    print(f"imports (torch, lightning, pipeline): {time.perf_counter() - start:.2f} s", flush=True)
    os.chdir(ROOT)
    table = []
    steps = {"digits": 22, "resnet20": 22}  # training batches per epoch (1,437 digits, batches of 64)
    with tempfile.TemporaryDirectory() as tmp:
        for job in args.jobs:
            for augment in ([True] if args.no_augment_rows else [True, False]):
                loops, ours = [], []
                for r in range(args.rounds):
                    loops.append(bare_loop(job, augment, args.epochs))
                    ours.append(pipeline_run(job, augment, args.epochs, Path(tmp) / f"{job}{augment}{r}"))
                    print(f"{job} augment={augment} round {r}: loop {loops[-1]['train']:.2f} s "
                          f"(acc {loops[-1]['acc']:.4f}), pipeline {ours[-1]['train']:.2f} s "
                          f"(acc {ours[-1]['acc']:.4f})", flush=True)
                ratios = [o["train"] / b["train"] for o, b in zip(ours, loops)]
                table.append((job, augment, loops, ours, ratios))
                print(f"  start-up: loop {_median_range([b['startup'] for b in loops])} s, pipeline "
                      f"{_median_range([o['startup'] for o in ours])} s", flush=True)
                for part in ours[0]["parts"]:
                    print(f"    {part}: {_median_range([o['parts'][part] for o in ours])} s")
            if args.ablate:
                cfg_callbacks = {"no lr monitor": ["--trainer.callbacks", "[]"] + _checkpoint_callbacks(),
                                 "no loggers": ["--trainer.logger", "false", "--trainer.callbacks", "[]"]
                                 + _checkpoint_callbacks(),
                                 "no checkpoint callbacks": ["--trainer.callbacks", "[]"] + _lr_monitor()}
                walls: dict[str, list[float]] = {name: [] for name in ABLATIONS}
                for r in range(args.rounds):  # interleaved: a slow spell of the machine hits every setting
                    for name, extra in ABLATIONS.items():
                        folder = Path(tmp) / f"{job}-{name}-{r}".replace(" ", "_").replace(".", "")
                        walls[name].append(pipeline_run(job, True, args.epochs, folder,
                                                        cfg_callbacks.get(name, extra))["train"])
                base = statistics.median(walls["as configured"])
                for name, values in walls.items():
                    print(f"  ablation {job} {name}: {_median_range(values)} s; "
                          f"{1000 * (statistics.median(values) - base) / (steps[job] * args.epochs):+.1f} ms "
                          "per step against as configured", flush=True)
            if args.profile:
                pipeline_run(job, True, args.epochs, Path(tmp) / f"{job}-profile", profile=True)
    print(f"\n{args.epochs} epochs, {args.rounds} rounds, {torch.get_num_threads()} thread(s), "
          f"load average at the end {os.getloadavg()[0]:.2f}")
    print("| job | augmentation | loop training s | pipeline training s | ratio (median, range) | ms per step "
          "(pipeline - loop) | val/acc loop | val/acc pipeline |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for job, augment, loops, ours, ratios in table:
        extra_ms = 1000 * (statistics.median(o["train"] for o in ours) - statistics.median(b["train"] for b in loops))
        print(f"| {job} | {'digits preset' if augment else 'none'} | {_median_range([b['train'] for b in loops])} | "
              f"{_median_range([o['train'] for o in ours])} | {_median_range(ratios)}x | "
              f"{extra_ms / (steps[job] * args.epochs):.1f} | {statistics.median(b['acc'] for b in loops):.4f} | "
              f"{statistics.median(o['acc'] for o in ours):.4f} |")


def _checkpoint_callbacks() -> list[str]:
    return ["--trainer.callbacks+", "lightning.pytorch.callbacks.ModelCheckpoint",
            "--trainer.callbacks.monitor", "val/acc", "--trainer.callbacks.mode", "max",
            "--trainer.callbacks+", "lightning.pytorch.callbacks.ModelCheckpoint",
            "--trainer.callbacks.filename", "last", "--trainer.callbacks.enable_version_counter", "false"]


def _lr_monitor() -> list[str]:
    return ["--trainer.callbacks+", "lightning.pytorch.callbacks.LearningRateMonitor",
            "--trainer.callbacks.logging_interval", "step"]


if __name__ == "__main__":
    main()
