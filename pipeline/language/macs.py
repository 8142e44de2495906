"""Floating-point operations of a block's probe, counted while it runs on 'meta' tensors.

``torch.utils.flop_counter.FlopCounterMode`` counts with the same formulas, but first breaks every op
it has no formula for into torch's Python reference implementations, and on 'meta' tensors torch
itself runs element-wise ops and batch norm through them: most of a DenseNet's planning time. Here
the ops with a formula (convolutions, matrix products) are run and counted; element-wise ops and
batch norm in evaluation, whose output has the shape of their broadcast inputs, are answered with an
empty tensor of that shape; every other op runs as it is.
"""
from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

aten = torch.ops.aten
_BATCH_NORM = {aten.native_batch_norm.default: 5, aten._native_batch_norm_legit_no_training.default: None}


def _shape_only(func, args: tuple) -> object:
    """The output of ``func`` when only its shape is needed and known without running it, else None."""
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if not tensors or any(t.device.type != "meta" for t in tensors):
        return None
    if func in _BATCH_NORM:
        training_arg = _BATCH_NORM[func]
        if training_arg is not None and args[training_arg]:
            return None  # training statistics: let torch compute the saved mean and variance shapes
        x = args[0]
        return torch.empty_like(x), x.new_empty((0,)), x.new_empty((0,))
    if torch.Tag.pointwise in func.tags and not func._schema.is_mutable and len(func._schema.returns) == 1:
        shape = torch.broadcast_shapes(*(t.shape for t in tensors))
        dtype = torch.result_type(*args[:2]) if len(args) >= 2 and isinstance(args[1], (torch.Tensor, int, float, bool)) \
            else tensors[0].dtype
        return torch.empty(shape, dtype=dtype, device="meta")
    return None


class FlopCounter(TorchDispatchMode):
    """``with FlopCounter() as c: ...`` then ``c.flops``: 2 per multiply-accumulate, as torch counts."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not kwargs:
            out = _shape_only(func, args)
            if out is not None:
                return out
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        return out
