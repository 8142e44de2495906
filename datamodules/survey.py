"""Know your data before training: what a folder holds, read from the image headers only."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

# a class with fewer images than this, or this many times fewer than the largest, gets a warning
TINY_CLASS = 10
IMBALANCE = 5.0
# headers read per split for sizes and modes: an evenly spaced sample keeps a million-image folder's
# table to seconds
SAMPLE = 5000


@dataclass
class Survey:
    """Per split: images per class, sizes (h, w) and modes seen (unreadable headers are counted apart)."""

    classes: list[str]
    counts: dict[str, list[int]] = field(default_factory=dict)  # split -> images per class
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (height, width), all splits
    modes: Counter = field(default_factory=Counter)
    unreadable: int = 0
    sampled: bool = False
    notes: list[str] = field(default_factory=list)  # what the folder held that was not read (ignored files, ...)

    def size_range(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(min, median, max) as (height, width), ordered by area."""
        ordered = sorted(self.sizes, key=lambda hw: (hw[0] * hw[1], hw))
        return ordered[0], ordered[len(ordered) // 2], ordered[-1]

    def warnings(self) -> list[str]:
        out = []
        train = self.counts.get("train", [])
        if train and min(train) < TINY_CLASS:
            tiny = [f"{c} ({n})" for c, n in zip(self.classes, train) if n < TINY_CLASS]
            out.append(f"tiny classes in train (< {TINY_CLASS} images): {', '.join(tiny)}")
        if train and max(train) >= IMBALANCE * max(min(train), 1):
            small, large = int(np.argmin(train)), int(np.argmax(train))
            out.append(f"imbalanced classes in train: '{self.classes[large]}' has {train[large]} images, "
                       f"'{self.classes[small]}' {train[small]} ({train[large] / max(train[small], 1):.0f}x); "
                       "consider --data.balance sampler")
        val = self.counts.get("val", [])
        if val and sum(val) and min(val) == 0:
            missing = [c for c, n in zip(self.classes, val) if n == 0]
            out.append(f"training classes with no validation images: {', '.join(missing)}")
        if self.unreadable:
            out.append(f"{self.unreadable} file(s) with unreadable headers (see --data.verify true)")
        return out + self.notes


def survey(items: dict[str, list[tuple[Path, int]]], classes: list[str], notes: list[str] = ()) -> Survey:
    result = Survey(list(classes), notes=list(notes))
    for split, split_items in items.items():
        if split == "predict":
            continue
        result.counts[split] = np.bincount([label for _, label in split_items], minlength=len(classes)).tolist()
        step = max(1, -(-len(split_items) // SAMPLE))
        result.sampled |= step > 1
        for path, _ in split_items[::step]:
            try:
                with Image.open(path) as image:
                    result.sizes.append((image.height, image.width))
                    result.modes[image.mode] += 1
            except Exception:  # any decoder failure (a bomb's too): counted here, named by the loader
                result.unreadable += 1
    return result


def table(result: Survey, channels: int, image_size: int) -> str:
    """A few lines for the console: classes and counts per split, sizes, modes, warnings."""
    splits = sorted((s for s in result.counts if sum(result.counts[s])), key=lambda s: s != "train")
    width = max([len(c) for c in result.classes] + [5])
    lines = [f"{'class':<{width}}  " + "  ".join(f"{s:>6}" for s in splits)]
    shown = result.classes if len(result.classes) <= 20 else result.classes[:10] + ["..."] + result.classes[-9:]
    for name in shown:
        if name == "...":
            lines.append("...")
            continue
        index = result.classes.index(name)
        lines.append(f"{name:<{width}}  " + "  ".join(f"{result.counts[s][index]:>6}" for s in splits))
    lines.append(f"{'total':<{width}}  " + "  ".join(f"{sum(result.counts[s]):>6}" for s in splits))
    if result.sizes:
        low, mid, high = (f"{h}x{w}" for h, w in result.size_range())
        sample = f" (a sample of {len(result.sizes)})" if result.sampled else ""
        lines.append(f"image sizes (HxW){sample} min {low}, median {mid}, max {high}; loaded as "
                     f"{channels}x{image_size}x{image_size}")
    modes = ", ".join(f"{mode} {count}" for mode, count in result.modes.most_common())
    lines.append(f"modes: {modes or 'none readable'}")
    lines += [f"warning: {w}" for w in result.warnings()]
    return f"{len(result.classes)} classes\n" + "\n".join(lines)
