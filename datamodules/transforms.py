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


# below this side (the net's input), ``auto`` picks the light recipe: random-resized crops of 8% of
# the area and a 0.875 centre crop destroy 32-pixel digits (issue 17: 0.891 vs 0.966 val/acc)
SMALL_IMAGE = 64
PRESETS = ("auto", "light", "cifar", "digits", "imagenet", "googlenet", "none")


def resolve_preset(name: str, size: int) -> str:
    """``auto`` -> ``light`` below :data:`SMALL_IMAGE` pixels, else ``imagenet``."""
    return ("light" if size < SMALL_IMAGE else "imagenet") if name == "auto" else name


def light_shift(size: int) -> int:
    """Largest shift of the ``light`` preset in pixels: 1/16 of the side (2 px at 32)."""
    return max(1, size // 16)


def preset(name: str, size: int, train: bool) -> list[A.BasicTransform]:
    """The named pipelines; ``size`` is the square output side; every one ends at size x size."""
    name = resolve_preset(name, size)
    if name == "none" or not train and name in ("cifar", "digits", "light"):  # evaluation at the training scale
        return [A.Resize(size, size)]
    if not train and name in ("imagenet", "googlenet"):  # shorter side to size/0.875 (224 -> 256), centre crop
        return [A.SmallestMaxSize(max_size=round(size / 0.875)), A.CenterCrop(size, size)]
    if name == "light":  # resize, then shift by up to size/16 px (zero fill); no flips: a mirrored 2 is no 2
        pad = light_shift(size)
        return [A.Resize(size, size), A.PadIfNeeded(size + 2 * pad, size + 2 * pad, border_mode=cv2.BORDER_CONSTANT,
                                                    fill=0), A.RandomCrop(size, size)]
    if name == "cifar":  # pad 4 + random 32x32 crop + flip (He et al., 2015)
        return [A.Resize(size, size), A.PadIfNeeded(size + 8, size + 8, border_mode=cv2.BORDER_CONSTANT, fill=0),
                A.RandomCrop(size, size), A.HorizontalFlip()]
    if name == "digits":  # small shifts, scalings and rotations; no flips (a mirrored 2 is no 2)
        return [A.Resize(size, size), A.Affine(translate_percent=(-0.1, 0.1), scale=(0.9, 1.1), rotate=(-10, 10),
                                               p=0.9)]
    if name == "imagenet":  # Inception-style random-resized crop, flip, colour jitter
        return [A.RandomResizedCrop((size, size), scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)), A.HorizontalFlip(),
                A.ColorJitter(0.4, 0.4, 0.4, 0.0, p=0.8)]
    if name == "googlenet":  # the paper: 8%-100% area, aspect 3/4-4/3, photometric distortions, random interpolation
        return [A.OneOf([A.RandomResizedCrop((size, size), scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                                             interpolation=i) for i in
                         (cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_AREA, cv2.INTER_CUBIC)], p=1.0),
                A.HorizontalFlip(), A.ColorJitter(0.3, 0.3, 0.3, 0.05, p=0.8), A.ToGray(p=0.05)]
    raise DataError(f"unknown augmentation preset '{name}'; known: {', '.join(PRESETS)}")


# OpenCV's own thread pool is off in every process: parallelism comes from the loader workers, and a
# worker forked from a process whose pool threads hold a lock deadlocks (seen in a 2-worker test:
# the child hung in cv2.setNumThreads). Set once, at import, before any loader forks.
cv2.setNumThreads(0)


def _describe(item: Any, index: int) -> str:
    name = item.get("name") if isinstance(item, dict) else type(item).__name__
    return f"item {index} ({name})"


def check_pipeline(spec: Spec, size: int, train: bool, image_sizes: list[tuple[int, int]], channels: int,
                   option: str) -> None:
    """Before training: run the pipeline, each transform made certain (p=1), on blank images of the
    data's sizes; a transform that fails, or a pipeline that does not end at size x size, is one
    DataError naming ``option`` and the transform."""
    import copy

    import numpy as np

    if spec is None or isinstance(spec, str):
        items, steps = None, preset(spec or "none", size, train)
    else:
        items, steps = list(spec), [build_transform(t) for t in spec]
    for height, width in sorted(set(image_sizes)):
        image = np.zeros((height, width, channels), np.uint8)
        changed = None  # the last transform that changed the shape
        for index, step in enumerate(steps):
            step = copy.deepcopy(step)
            step.p = 1.0
            label = _describe(items[index] if items else step, index)
            try:
                out = A.Compose([step])(image=image)["image"]
            except Exception as err:  # noqa: BLE001  albumentations/OpenCV raise many types for a bad size
                raise DataError(f"{option}: {label} fails on a {height}x{width} image: "
                                f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
            if out.shape[:2] != image.shape[:2]:
                changed = label
            image = out if out.ndim == 3 else out[:, :, None]
        if image.shape[:2] != (size, size):
            last = f" after {changed}" if changed else ""
            raise DataError(f"{option}: ends at {image.shape[0]}x{image.shape[1]}{last} for a {height}x{width} image, "
                            f"the net needs {size}x{size}: end the list with "
                            f"{{name: Resize, height: {size}, width: {size}}} or a crop to that size")


def shorter_side(side: int) -> A.Compose:
    """Resize the shorter side to ``side``, aspect ratio kept (multi-crop evaluation cuts its crops later)."""
    return A.Compose([A.SmallestMaxSize(max_size=side)])


def pipeline(spec: Spec, size: int, train: bool) -> A.Compose:
    """A preset name, an explicit list of transforms, or None (resize only)."""
    if spec is None:
        spec = "none"
    steps = preset(spec, size, train) if isinstance(spec, str) else [build_transform(t) for t in spec]
    return A.Compose(steps)
