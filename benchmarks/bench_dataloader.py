"""Train-loader throughput: our ImageFolder + albumentations `imagenet` preset against
torchvision.transforms.v2 doing the same augmentations on the same JPEG files, same workers.

    python benchmarks/bench_dataloader.py [--images 400] [--workers 2] [--rounds 3]

Both decode with PIL (the same libjpeg-turbo), so the comparison is of the pipelines: crop,
resize, flip, colour jitter, normalise, batch. Rounds alternate A/B; medians and the ratio print
as a Markdown table.
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
import torchvision
from PIL import Image
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from datamodules import ImageFolderDataModule  # noqa: E402


def make_images(root: Path, count: int, classes: int = 4) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:375, 0:500]
    for i in range(count):
        c = i % classes
        base = np.stack([(xx * (c + 1) / 7 + yy / 3) % 255, (yy * 0.6 + 40 * c) % 255, (xx * yy / 900) % 255], -1)
        image = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        path = root / "train" / f"class{c}" / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path, quality=90)
    for c in range(classes):
        (root / "val" / f"class{c}").mkdir(parents=True, exist_ok=True)


class Normalized:
    """Our loader plus the normalisation the datamodule applies once a batch is on the device
    (here on the CPU of the main process, so the comparison includes it)."""

    def __init__(self, dm: ImageFolderDataModule):
        self.dm, self.loader = dm, dm.train_dataloader()

    def __iter__(self):
        for images, targets, _ in self.loader:
            yield self.dm.normalize(images), targets


def ours(root: Path, workers: int, batch: int):
    dm = ImageFolderDataModule(str(root), image_size=224, batch_size=batch, num_workers=workers, cache_bytes=0,
                               persistent_workers=False)
    dm.setup("fit")
    return Normalized(dm)


def reference(root: Path, workers: int, batch: int):
    transform = v2.Compose([v2.PILToTensor(), v2.RandomResizedCrop(224, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                                                                   antialias=True),
                            v2.RandomHorizontalFlip(), v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4)], p=0.8),
                            v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    dataset = torchvision.datasets.ImageFolder(str(root / "train"), transform=transform)
    return torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers)


def images_per_second(loader) -> float:
    start, count = time.perf_counter(), 0
    for batch in loader:
        count += len(batch[0])
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        make_images(root, args.images)
        a_loader, b_loader = ours(root, args.workers, args.batch), reference(root, args.workers, args.batch)
        images_per_second(a_loader), images_per_second(b_loader)  # warm-up: page cache, imports
        a, b = [], []
        for r in range(args.rounds):
            for fn, acc in ((a_loader, a), (b_loader, b)) if r % 2 == 0 else ((b_loader, b), (a_loader, a)):
                acc.append(images_per_second(fn))
    print(f"# {platform.machine()}, {args.workers} workers, batch {args.batch}, {args.images} JPEGs 500x375, "
          f"torch {torch.__version__}, torchvision {torchvision.__version__}, {time.strftime('%Y-%m-%d')}")
    print("| pipeline | images/s (median) |\n|---|---:|")
    print(f"| ours: ImageFolderDataModule, albumentations `imagenet` | {statistics.median(a):.1f} |")
    print(f"| torchvision ImageFolder + transforms.v2 | {statistics.median(b):.1f} |")
    print(f"| ratio ours / torchvision | {statistics.median(a) / statistics.median(b):.2f} |")


if __name__ == "__main__":
    main()
