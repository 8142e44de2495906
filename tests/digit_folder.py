"""A folder of small grey handwritten-digit PNGs, as a user would bring: ``root/train/<digit>/*.png``
and ``root/val/<digit>/*.png``. Made from scikit-learn's bundled 8x8 digits (no download): the
originals are split first (validation digits are never seen in training), then each image is
upscaled to ``size`` x ``size`` and varied by a seeded random affine warp and a little noise.
Used by tests/test_own_data.py and benchmarks/bench_own_data.py.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def make_digit_folder(root: str | Path, train: int = 4000, val: int = 1000, size: int = 28, seed: int = 0) -> Path:
    from sklearn.datasets import load_digits

    root = Path(root)
    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.images))
    cut = int(len(order) * 0.8)
    for split, count, pool in (("train", train, order[:cut]), ("val", val, order[cut:])):
        for n in range(count):
            index = pool[n % len(pool)]
            image = cv2.resize((digits.images[index] * (255 / 16)).astype(np.float32), (size, size),
                               interpolation=cv2.INTER_CUBIC)
            angle, scale = rng.uniform(-12, 12), rng.uniform(0.85, 1.05)
            matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
            matrix[:, 2] += rng.uniform(-1.5, 1.5, 2)
            image = cv2.warpAffine(image, matrix, (size, size), borderValue=0)
            image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
            folder = root / split / str(digits.target[index])
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{n:05d}.png"), image)
    return root
