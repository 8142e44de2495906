"""Augmentation pipelines built with albumentations, from a preset name or a list of transforms.

A config names transforms by their albumentations class and arguments, e.g.

    train_transforms:
      - {name: HorizontalFlip, p: 0.5}
      - {name: Affine, translate_percent: 0.1, rotate: [-10, 10]}

Only classes albumentations itself exports can be named: the name is looked up in its module
namespace, never imported from elsewhere.
"""
from __future__ import annotations

import difflib
from typing import Any

import albumentations as A
import cv2

from .errors import DataError

Spec = str | list[dict[str, Any]] | None


def _transform_classes() -> dict[str, type]:
    return {name: obj for name, obj in vars(A).items()
            if isinstance(obj, type) and issubclass(obj, A.BasicTransform) and not name.startswith("_")}


def build_transform(item: dict[str, Any]) -> A.BasicTransform:
    if not isinstance(item, dict) or "name" not in item:
        raise DataError(f"a transform must be a mapping with 'name', got {item!r}")
    args = dict(item)
    name = args.pop("name")
    classes = _transform_classes()
    if name not in classes:
        near = difflib.get_close_matches(str(name), list(classes), n=3)
        hint = f" (did you mean {' or '.join(near)}?)" if near else ""
        raise DataError(f"unknown albumentations transform '{name}'{hint}")
    try:
        return classes[name](**args)
    except (TypeError, ValueError) as err:
        raise DataError(f"transform '{name}': {str(err).splitlines()[0]}") from None


def preset(name: str, size: int, train: bool) -> list[A.BasicTransform]:
    """The named pipelines; ``size`` is the square output side."""
    if name == "none" or not train and name in ("cifar", "digits"):
        return [A.Resize(size, size)]
    if not train:  # resize the shorter side to size/0.875 (224 -> 256), then centre crop
        return [A.SmallestMaxSize(max_size=round(size / 0.875)), A.CenterCrop(size, size)]
    if name == "cifar":  # pad 4 + random 32x32 crop + flip (He et al., 2015)
        return [A.PadIfNeeded(size + 8, size + 8, border_mode=cv2.BORDER_CONSTANT, fill=0),
                A.RandomCrop(size, size), A.HorizontalFlip()]
    if name == "digits":  # small shifts, scalings and rotations; no flips (a mirrored 2 is no 2)
        return [A.Affine(translate_percent=(-0.1, 0.1), scale=(0.9, 1.1), rotate=(-10, 10), p=0.9)]
    if name == "imagenet":  # Inception-style random-resized crop, flip, colour jitter
        return [A.RandomResizedCrop((size, size), scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)), A.HorizontalFlip(),
                A.ColorJitter(0.4, 0.4, 0.4, 0.0, p=0.8)]
    if name == "googlenet":  # the paper: 8%-100% area, aspect 3/4-4/3, photometric distortions, random interpolation
        return [A.OneOf([A.RandomResizedCrop((size, size), scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                                             interpolation=i) for i in
                         (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_AREA, cv2.INTER_CUBIC)], p=1.0),
                A.HorizontalFlip(), A.ColorJitter(0.3, 0.3, 0.3, 0.05, p=0.8), A.ToGray(p=0.05)]
    raise DataError(f"unknown augmentation preset '{name}'; known: cifar, digits, imagenet, googlenet, none")


def shorter_side(side: int) -> A.Compose:
    """Resize the shorter side to ``side``, aspect ratio kept (multi-crop evaluation cuts its crops later)."""
    return A.Compose([A.SmallestMaxSize(max_size=side)])


def pipeline(spec: Spec, size: int, train: bool) -> A.Compose:
    """A preset name, an explicit list of transforms, or None (resize only)."""
    if spec is None:
        spec = "none"
    steps = preset(spec, size, train) if isinstance(spec, str) else [build_transform(t) for t in spec]
    return A.Compose(steps)
