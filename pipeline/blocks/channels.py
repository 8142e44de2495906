"""Channel plumbing without weights: shuffle (ShuffleNet), slices of a node's channels (ShuffleNetV2's
split, GhostNet's halves) and zero channels appended (the ResNet paper's option-A shortcut)."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from ..errors import BlockError
from .base import Block, Shape
from .ranges import Count, NonNegative
from .registry import register


@register("channel_shuffle")
class ChannelShuffle(Block):
    """Interleave the channels of ``groups`` groups (ShuffleNet): (g, C/g) -> (C/g, g).

    Args:
        groups: number of channel groups to interleave.
    """

    def __init__(self, in_shape: Shape, *, groups: Count = 2):
        super().__init__()
        if groups <= 0 or in_shape[0] % groups:
            raise BlockError(f"'groups' must be a positive divisor of the {in_shape[0]} input channels, got {groups}",
                             arg="groups")
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        rest = x.shape[2:]
        # (N, g, C/g, *) -> (N, C/g, g, *): channel j of group k moves to position j * g + k
        return x.reshape(n, self.groups, c // self.groups, *rest).transpose(1, 2).reshape(n, c, *rest)


@register("slice")
class Slice(Block):
    """Channels ``start`` to ``stop`` (exclusive) of the input; negative values count from the end.

    Args:
        start: first channel kept.
        stop: channel after the last one kept (default: through the last channel).
    """

    def __init__(self, in_shape: Shape, *, start: int = 0, stop: int | None = None):
        super().__init__()
        channels = in_shape[0]
        begin = start + channels if start < 0 else start
        end = channels if stop is None else stop + channels if stop < 0 else stop
        if not 0 <= begin < end <= channels:
            raise BlockError(f"slice {start}:{'' if stop is None else stop} selects no channels or goes beyond the "
                             f"input's {channels} channels", arg="start" if not 0 <= begin < channels else "stop")
        self.begin, self.end = begin, end

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.begin:self.end]


@register("split")
class Split(Block):
    """Part ``index`` of the input's channels cut into ``parts`` equal parts, or into the widths ``sizes``
    (ShuffleNetV2 reads ``{block: split, index: 0}`` and ``index: 1`` of one node).

    Args:
        index: which part to keep (0 = the first channels).
        parts: number of equal parts.
        sizes: widths of the parts (they must add up to the input channels); overrides ``parts``.
    """

    def __init__(self, in_shape: Shape, *, index: NonNegative, parts: int = 2, sizes: list[int] | None = None):
        super().__init__()
        channels = in_shape[0]
        if sizes is None:
            if parts <= 0 or channels % parts:
                raise BlockError(f"cannot split {channels} channels into {parts} equal parts", arg="parts")
            sizes = [channels // parts] * parts
        if any(s <= 0 for s in sizes) or sum(sizes) != channels:
            raise BlockError(f"'sizes' {list(sizes)} must be positive and add up to the input's {channels} channels",
                             arg="sizes")
        if not 0 <= index < len(sizes):
            raise BlockError(f"'index' must be between 0 and {len(sizes) - 1} (the split has {len(sizes)} parts), "
                             f"got {index}", arg="index")
        self.begin = sum(sizes[:index])
        self.end = self.begin + sizes[index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.begin:self.end]


@register("channel_pad")
class ChannelPad(Block):
    """Zero channels added up to ``out`` channels (no weights). After a subsampling such as
    ``{block: maxpool, kernel: 1, stride: 2}`` it is the ResNet paper's option-A shortcut.

    Args:
        out: output channels (at least the input's).
        side: where the zeros go: after the input channels (end) or half before and half after (both).
    """

    def __init__(self, in_shape: Shape, *, out: int, side: Literal["end", "both"] = "end"):
        super().__init__()
        extra = out - in_shape[0]
        if extra < 0:
            raise BlockError(f"channel_pad cannot reduce channels ({in_shape[0]} -> {out})", arg="out")
        before = extra // 2 if side == "both" else 0
        self.pad = (0, 0) * (len(in_shape) - 1) + (before, extra - before)
        self.out_channels = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pad)
