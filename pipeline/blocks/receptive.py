"""Receptive field and effective stride of a block, measured by tracing its ops on meta tensors.

A block maps a window of ``size`` input positions to one output position, and adjacent outputs
are ``jump`` input positions apart (its effective stride). Both compose through a network:
``size_out = size_in + (size_block - 1) * jump_in`` and ``jump_out = jump_in * jump_block``,
per spatial dimension; parallel branches and merges take the largest window. So one number pair
per block is enough, and :func:`trace_field` finds it for any block without per-block code: it
runs ``forward`` on weightless meta tensors under a dispatch mode that follows every aten op from
input to output - convolutions and pools (kernel, stride, dilation, transposed convs) grow the
window; padding, crops, views and element-wise ops pass it on; a reduction of several positions to
one (global pooling, flattening a map) makes the output see the whole input. A block may override
``Block.receptive_field`` with arithmetic instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.weak import WeakIdKeyDictionary


@dataclass(frozen=True)
class Field:
    """Receptive field ``size`` and effective stride ``jump`` per spatial dimension, in input
    positions; ``whole``: the value depends on every input position (after global pooling)."""

    size: tuple[float, ...]
    jump: tuple[float, ...]
    whole: bool = False

    @staticmethod
    def unit(dims: int) -> "Field":
        return Field((1.0,) * dims, (1.0,) * dims)

    def then(self, block: "Field") -> "Field":
        """This field followed by a block whose own field (measured from a unit input) is ``block``."""
        if len(block.size) != len(self.size):  # a block that changed the number of spatial dims
            return Field(self.size, self.jump, True)
        size = tuple(s + (b - 1) * j for s, b, j in zip(self.size, block.size, self.jump))
        jump = tuple(j * b for j, b in zip(self.jump, block.jump))
        return Field(size, jump, self.whole or block.whole)

    def union(self, other: "Field") -> "Field":
        """Where two paths meet (a merge, or branches inside a block): the larger window.

        A path that already saw the whole input (a squeeze-excitation gate, a broadcast global
        context) does not make a local path global: the field reported is the local one's."""
        if len(other.size) != len(self.size):
            return Field(self.size, self.jump, True)
        if self.whole != other.whole:
            return other if self.whole else self
        return Field(tuple(map(max, self.size, other.size)), tuple(map(max, self.jump, other.jump)),
                     self.whole or other.whole)


def _ints(value, dims: int) -> list[int]:
    if isinstance(value, int):
        return [value] * dims
    return list(value)


def _window(field: Field, kernel, stride, dilation, transposed: bool = False) -> Field:
    """A sliding window over the last ``len(field.size)`` dims (pool1d runs as 2-D with a unit dim)."""
    n = len(field.size)
    kernel, stride, dilation = (_ints(v, n)[-n:] if n else [] for v in (kernel, stride or kernel, dilation))
    size, jump = list(field.size), list(field.jump)
    for d in range(n):
        jump[d] = jump[d] / stride[d] if transposed else jump[d]
        size[d] += (kernel[d] - 1) * dilation[d] * jump[d]
        jump[d] = jump[d] if transposed else jump[d] * stride[d]
    return Field(tuple(size), tuple(jump), field.whole)


class _Tracker(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.fields = WeakIdKeyDictionary()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        flat_in = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor) and t in self.fields]
        if not flat_in:
            return out
        first = flat_in[0]
        field = self.fields[first]
        for t in flat_in[1:]:
            field = field.union(self.fields[t])
        name = func.__name__
        if name.startswith("convolution"):
            field = _window(field, args[1].shape[2:], args[3], args[5], transposed=bool(args[6]))
        elif "pool" in name and "adaptive" not in name and "backward" not in name:
            # (input, kernel, stride, padding, [dilation,] ...): only max pools have a dilation
            dilation = args[4] if name.startswith("max_pool") and len(args) > 4 else 1
            field = _window(field, args[1], args[2] if len(args) > 2 else None, dilation)
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                self.fields[t] = _reshaped(field, first, t, name)
        return out


def _reshaped(field: Field, source: torch.Tensor, out: torch.Tensor, name: str) -> Field:
    """What a generic op does to the field: pass it on, or see the whole input after a reduction."""
    if "pad" in name or name.startswith(("convolution", "max_pool", "avg_pool", "slice")):
        return field  # a crop (slice) picks positions: each still sees its own window
    if out.dim() < 3 and source.dim() >= 3:  # flattened or reduced to (N, C): every position there was
        return Field(field.size, field.jump, field.whole or any(b > 1 for b in source.shape[2:]))
    if out.dim() == source.dim() and sorted(out.shape) != sorted(source.shape):
        before, after = source.shape[2:], out.shape[2:]
        if all(a == 1 for a in after) and any(b > 1 for b in before):
            return Field(field.size, field.jump, True)  # global pooling (keepdim)
        n = len(field.size)
        if n and len(before) >= n and all(a > 0 for a in after):  # resampling (adaptive pool, interpolate)
            ratio = [b / a for b, a in zip(list(before)[-n:], list(after)[-n:])]
            return Field(tuple(s + (max(r, 1) - 1) * j for s, r, j in zip(field.size, ratio, field.jump)),
                         tuple(j * r for j, r in zip(field.jump, ratio)), field.whole)
    return field  # element-wise, views, permutes, merges


def trace_field(block: torch.nn.Module, in_shape, merges: bool = False) -> Field | list[Field]:
    """The block's own field: for a unit-field input; per input for a merging block."""
    def probe(shape) -> torch.Tensor:
        return torch.empty((2, *shape), device="meta")  # batch 2: batch norm refuses batch 1

    shapes = list(in_shape) if merges else [in_shape]
    results = []
    for index in range(len(shapes)):
        tracker = _Tracker()
        xs = [probe(s) for s in shapes]
        tracker.fields[xs[index]] = Field.unit(len(shapes[index]) - 1)
        with torch.no_grad(), tracker:
            y = block(xs if merges else xs[0])
        outs = [t for t in tree_flatten(y)[0] if isinstance(t, torch.Tensor)]
        traced = [tracker.fields[t] for t in outs if t in tracker.fields]
        if not traced:  # the output does not depend on this input (or is not a float tensor)
            results.append(Field.unit(len(shapes[index]) - 1))
            continue
        field = traced[0]
        for other in traced[1:]:
            field = field.union(other)
        results.append(field)
    return results if merges else results[0]
