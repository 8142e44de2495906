"""Test-time crops: each mode's geometry as boxes, and the crops cut from image tensors.

Every crop is a square region of the image resized so that its shorter side has a given length
(a "scale"), resized to the model's input side when the region is larger, and optionally mirrored.
Scales are written in the papers' units, relative to a 224-pixel input: ``256`` means a shorter
side of 256/224 x the model's input side, so the same mode fits any input size.

The image is decoded and resized once, by the data loader, to the largest scale; every crop and
every other scale is cut from that tensor on the device, and the crops of a batch go through the
model together.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, get_args

import torch
import torch.nn.functional as F

REFERENCE_SIDE = 224
# the modes, listed once: the type is what the CLI checks and documents, MODES what code loops over
CropMode = Literal["center", "flip", "ten", "googlenet144"]
MODES: tuple[str, ...] = get_args(CropMode)
DEFAULT_SCALES = {"center": (256,), "flip": (256,), "ten": (256,), "googlenet144": (256, 288, 320, 352)}
MIRRORED = {"center": False, "flip": True, "ten": True, "googlenet144": True}


@dataclass(frozen=True)
class Crop:
    """A square region of the image resized to shorter side ``short``: rows ``top:top+side``,
    columns ``left:left+side``; resized to the input side when ``side`` is larger; flipped
    left-right when ``mirror``."""

    short: int
    top: int
    left: int
    side: int
    mirror: bool = False


def scale_side(scale: int, size: int) -> int:
    """Shorter side in pixels of a scale (224-relative) for a model whose input side is ``size``."""
    return round(scale * size / REFERENCE_SIDE)


def resized_shape(height: int, width: int, short: int) -> tuple[int, int]:
    """(height, width) after resizing the shorter side to ``short``, aspect ratio kept."""
    if height <= width:
        return short, max(short, round(width * short / height))
    return max(short, round(height * short / width)), short


def loader_side(mode: str, size: int, scales: tuple[int, ...] | list[int] | None = None) -> int:
    """The shorter side the data loader resizes to: the largest scale the mode needs."""
    return max(scale_side(s, size) for s in (scales or DEFAULT_SCALES[mode]))


def _five(top: int, left: int, height: int, width: int, size: int, short: int) -> list[Crop]:
    """The 4 corner crops and the centre crop of a region (torchvision's FiveCrop order)."""
    bottom, right = top + height - size, left + width - size
    return [Crop(short, top, left, size), Crop(short, top, right, size), Crop(short, bottom, left, size),
            Crop(short, bottom, right, size), Crop(short, top + (height - size) // 2, left + (width - size) // 2, size)]


def _squares(height: int, width: int, short: int) -> list[tuple[int, int]]:
    """(top, left) of GoogLeNet's 3 squares along the longer side: left/centre/right or top/middle/bottom."""
    if width >= height:
        return [(0, 0), (0, (width - short) // 2), (0, width - short)]
    return [(0, 0), ((height - short) // 2, 0), (height - short, 0)]


def crop_boxes(mode: str, height: int, width: int, size: int, scales: tuple[int, ...] | list[int] | None = None,
               mirror: bool | None = None) -> list[Crop]:
    """The crops of an image of ``height`` x ``width`` for a model with square input side ``size``.

    center: the centre crop; flip: it and its mirror; ten: 4 corners + centre and their mirrors;
    googlenet144: per scale, 3 squares x (4 corners + centre + the whole square resized), all
    mirrored: 4 x 3 x 6 x 2 = 144. ``scales`` replaces the mode's scales (multi-scale evaluation);
    ``mirror`` overrides whether mirrored copies are added. Unmirrored crops come first, their
    mirrors after, in the same order.
    """
    if mode not in MODES:
        raise ValueError(f"unknown crop mode '{mode}'; known: {', '.join(MODES)}")
    crops: list[Crop] = []
    for scale in scales or DEFAULT_SCALES[mode]:
        short = scale_side(scale, size)
        if short < size:
            raise ValueError(f"scale {scale} gives a shorter side of {short} pixels, less than the input side {size}")
        h, w = resized_shape(height, width, short)
        if mode in ("center", "flip"):
            crops.append(Crop(short, (h - size) // 2, (w - size) // 2, size))
        elif mode == "ten":
            crops += _five(0, 0, h, w, size, short)
        else:
            for top, left in _squares(h, w, short):
                crops += _five(top, left, short, short, size, short) + [Crop(short, top, left, short)]
    if MIRRORED[mode] if mirror is None else mirror:
        crops += [replace(c, mirror=True) for c in crops]
    return crops


def _resize(image: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    # antialiased bilinear: the scales are downsamplings of the loaded image
    return F.interpolate(image[None], size=shape, mode="bilinear", antialias=True, align_corners=False)[0]


def make_crops(image: torch.Tensor, crops: list[Crop], size: int) -> torch.Tensor:
    """Cut ``crops`` from one (C, H, W) float image: (len(crops), C, size, size). Each scale is
    resized once and each resized square once; mirrors reuse their unmirrored crop."""
    height, width = image.shape[-2:]
    scaled: dict[int, torch.Tensor] = {}
    cut: dict[Crop, torch.Tensor] = {}
    out = []
    for crop in crops:
        plain = replace(crop, mirror=False)
        if plain not in cut:
            if crop.short not in scaled:
                shape = resized_shape(height, width, crop.short)
                scaled[crop.short] = image if shape == (height, width) else _resize(image, shape)
            region = scaled[crop.short][:, crop.top:crop.top + crop.side, crop.left:crop.left + crop.side]
            cut[plain] = region if crop.side == size else _resize(region, (size, size))
        out.append(cut[plain].flip(-1) if crop.mirror else cut[plain])
    return torch.stack(out)
