"""Pipeline overhead: training through ClassifierModule + Lightning (as `python -m pipeline fit`
sets it up: CSV and TensorBoard loggers, checkpoints, metrics) against a plain PyTorch loop with
the same model, in-memory data loader, optimizer, batch size and number of steps.

    python benchmarks/bench_pipeline.py [--steps 200] [--rounds 3] [--nets lenet5 resnet20_cifar]

Only the training steps are timed (a callback marks the first and last batch), so start-up costs
such as imports and argument parsing are excluded on both sides. Rounds alternate A/B.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datamodules import SyntheticDataModule  # noqa: E402
from pipeline.training import ClassifierModule, OptimizerConfig, SchedulerConfig  # noqa: E402
from pipeline.training.cli import AtomicCheckpointIO  # noqa: E402

NETS = {"lenet5": ("lenet5.yaml", (1, 32, 32), 128), "resnet20_cifar": ("resnet20_cifar.yaml", (3, 32, 32), 64)}


class StepTimer(L.Callback):
    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == 1:  # after one warm-up step, like the plain loop
            self.start = time.perf_counter()

    def on_train_end(self, trainer, module):
        self.seconds = time.perf_counter() - self.start


def data(shape, batch: int, steps: int) -> SyntheticDataModule:
    dm = SyntheticDataModule(num_classes=10, input_shape=shape, train_size=batch * (steps + 1), val_size=batch,
                             batch_size=batch)
    dm.setup("fit")
    return dm


def pipeline_run(arch: str, shape, batch: int, steps: int) -> float:
    dm = data(shape, batch, steps)
    model = ClassifierModule(str(ROOT / "architectures" / arch), num_classes=10, input_shape=shape,
                             optimizer=OptimizerConfig(lr=0.01), scheduler=SchedulerConfig(name="cosine"))
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as root:
        loggers = [L.pytorch.loggers.CSVLogger(root, name=""), L.pytorch.loggers.TensorBoardLogger(root, name="")]
        trainer = L.Trainer(max_epochs=1, logger=loggers, default_root_dir=root, enable_progress_bar=False,
                            limit_val_batches=0, plugins=[AtomicCheckpointIO()], log_every_n_steps=10,
                            callbacks=[timer, L.pytorch.callbacks.ModelCheckpoint(dirpath=root, filename="last")],
                            enable_model_summary=False)
        trainer.fit(model, dm)
    return (trainer.global_step - 1) * batch / timer.seconds


def plain_run(arch: str, shape, batch: int, steps: int) -> float:
    dm = data(shape, batch, steps)
    model = ClassifierModule(str(ROOT / "architectures" / arch), num_classes=10, input_shape=shape).net.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    count, start = 0, None
    for i, (images, target) in enumerate(dm.train_dataloader()):
        if i == 1:
            start = time.perf_counter()
        images = dm.normalize(images)
        out = model(images)
        loss = F.cross_entropy(out if isinstance(out, torch.Tensor) else out.logits, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        count += len(images) if i >= 1 else 0
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--nets", nargs="*", default=list(NETS), choices=list(NETS))
    args = parser.parse_args()
    print(f"# {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"lightning {L.__version__}, {time.strftime('%Y-%m-%d')}, {args.steps} steps")
    print("| net | batch | pipeline img/s | plain loop img/s | ratio |\n|---|---:|---:|---:|---:|")
    for name in args.nets:
        arch, shape, batch = NETS[name]
        a, b = [], []
        for r in range(args.rounds):
            order = ((pipeline_run, a), (plain_run, b)) if r % 2 == 0 else ((plain_run, b), (pipeline_run, a))
            for fn, acc in order:
                acc.append(fn(arch, shape, batch, args.steps))
        pa, pb = statistics.median(a), statistics.median(b)
        print(f"| {name} | {batch} | {pa:.0f} | {pb:.0f} | {pa / pb:.3f} |", flush=True)


if __name__ == "__main__":
    main()
