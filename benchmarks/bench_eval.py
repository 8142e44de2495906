"""Multi-crop evaluation cost: ``ten`` and ``googlenet144`` against ``center``, same model and data, one run.

Times the evaluation path of ``validate``/``test`` per mode: the loader (images decoded once into the
datamodule's memory cache, then resized per mode), normalisation, the crops cut on tensors, the
forward passes and the averaging. Modes alternate within each round (the order rotates), after a
one-batch warm-up of each; the table gives the median time per round and its ratio to ``center``.
``center`` is the plain path: the loader's resize + centre crop, one forward pass per image.

    python benchmarks/bench_eval.py                                   # resnet18 at 224, 16 images, 2 rounds
    python benchmarks/bench_eval.py --net googlenet --images 8 --rounds 3
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datamodules import ImageFolderDataModule  # noqa: E402
from pipeline.evaluation import EvalConfig, Evaluator, whole_image_side  # noqa: E402
from pipeline.training import ClassifierModule  # noqa: E402

TARGETS = {"ten": 10.5, "googlenet144": 150.0}


def make_folder(root: Path, images: int) -> Path:
    """JPEGs of 500x375 and 375x500 (both orientations, as in ImageNet) in two classes."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("val", images)):
        for i in range(count):
            shape = (375, 500, 3) if i % 2 == 0 else (500, 375, 3)
            path = root / split / f"class{i % 2}" / f"{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(path, quality=90)
    return root


def evaluate(model: ClassifierModule, data: ImageFolderDataModule, mode: str, limit: int | None = None) -> float:
    """Seconds to evaluate the validation images (or ``limit`` batches) in ``mode``."""
    start = time.perf_counter()
    config = EvalConfig(crops=mode)
    evaluator = Evaluator(model.num_classes, config)
    data.eval_resize = whole_image_side(config, model.eval_members(), data.input_shape)
    with torch.inference_mode():
        for i, batch in enumerate(data.val_dataloader()):
            if limit is not None and i >= limit:
                break
            images, _ = data.on_after_batch_transfer(batch, 0)
            evaluator.log_probs(model.eval_members(), images)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--net", default="resnet18", help="zoo file name without .yaml")
    parser.add_argument("--size", type=int, default=224, help="model input side")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--modes", nargs="+", default=["center", "ten", "googlenet144"])
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        data = ImageFolderDataModule(str(make_folder(Path(tmp), args.images)), image_size=args.size,
                                     batch_size=args.batch)
        data.setup()
        model = ClassifierModule(str(ROOT / "architectures" / f"{args.net}.yaml"), num_classes=2,
                                 input_shape=(3, args.size, args.size)).eval()
        for mode in args.modes:  # warm-up: allocator, oneDNN kernels for each batch shape
            evaluate(model, data, mode, limit=1)
        times: dict[str, list[float]] = {m: [] for m in args.modes}
        for r in range(args.rounds):
            order = args.modes[r % len(args.modes):] + args.modes[:r % len(args.modes)]
            for mode in order:
                times[mode].append(evaluate(model, data, mode))
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{args.net} at {args.size}, {args.images} images (500x375 and 375x500), batch {args.batch}, "
          f"{args.rounds} rounds, {time.strftime('%Y-%m-%d')}")
    print("| mode | crops per image | s per round (median) | images/s | time vs center | target |")
    print("|---|---:|---:|---:|---:|---:|")
    base = statistics.median(times["center"]) if "center" in times else None
    for mode in args.modes:
        t = statistics.median(times[mode])
        crops = Evaluator(2, EvalConfig(crops=mode)).crops_per_image(args.size)
        ratio = f"{t / base:.2f}x" if base else "-"
        target = f"<= {TARGETS[mode]}x" if mode in TARGETS else ""
        print(f"| {mode} | {crops} | {t:.2f} | {args.images / t:.2f} | {ratio} | {target} |", flush=True)


if __name__ == "__main__":
    main()
