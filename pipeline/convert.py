"""Bring torchvision's (and timm's) weights into YAML-built models.

The zoo's blocks register their layers in the same order as torchvision's reference modules, so
a reference state dict converts *positionally*: its entries are paired in order with the YAML
model's, every pair's shape is checked, and the first mismatch is reported by both names. Where a
reference registers modules in another order than the paper's graph, a short per-net table
(:data:`LAYOUTS`) says so: which top-level modules come where (GoogLeNet puts its auxiliary heads
last), and which child modules the reference registers before their siblings (RegNet's shortcut
``proj`` before the branch ``f``; ConvNeXt's ``layer_scale`` before the block it scales).

A tensor may differ from its partner only by sizes of 1 (a Linear's ``(out, in)`` weight is a 1x1
conv's ``(out, in, 1, 1)``; a ``(C, 1, 1)`` scale is a ``(C,)`` one): it is reshaped, never
transposed or cut.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .checkpoints import read_state_dict, save_atomic
from .errors import ArchError



@dataclass(frozen=True)
class Layout:
    """Where a reference's state-dict order differs from the YAML file's node order."""

    top: tuple[str, ...] = ()  # every top-level module, in the YAML file's order
    last: tuple[str, ...] = ()  # child names the reference registers first, the YAML file after their siblings


_REGNET = Layout(last=("proj",))  # ResBottleneckBlock registers its shortcut before the branch
LAYOUTS: dict[str, Layout] = {
    "googlenet": Layout(top=("conv1", "conv2", "conv3", "inception3a", "inception3b", "inception4a", "aux1",
                             "inception4b", "inception4c", "inception4d", "aux2", "inception4e", "inception5a",
                             "inception5b", "fc")),
    "regnet_x_400mf": _REGNET, "regnet_y_400mf": _REGNET,
    "convnext_tiny": Layout(last=("layer_scale",)),  # a parameter of CNBlock itself: listed before its children
}


class ConversionError(ArchError):
    """The reference weights do not fit the architecture (wrong model, classes or layer order)."""


def _reorder(state: dict[str, torch.Tensor], layout: Layout | None) -> list[tuple[str, torch.Tensor]]:
    """The reference's tensors in the YAML model's order (a stable sort: unnamed order is kept)."""
    items = list(state.items())
    if layout is None:
        return items
    if layout.top:
        rank = {name: i for i, name in enumerate(layout.top)}
        unknown = sorted({k.split(".")[0] for k, _ in items} - set(rank))
        if unknown:
            raise ConversionError(f"reference weights have modules the conversion table does not place: {unknown}")
        items = sorted(items, key=lambda kv: rank[kv[0].split(".")[0]])
    if layout.last:
        # key each tensor by its path, each step ranked among its siblings by first appearance, a
        # child named in `last` after all of them: sorting then moves whole sub-modules, nothing else
        seen: dict[str, dict[str, int]] = {}

        def path_rank(key: str) -> tuple:
            parts, ranks = key.split("."), []
            for depth, part in enumerate(parts):
                siblings = seen.setdefault(".".join(parts[:depth]), {})
                ranks.append((part in layout.last, siblings.setdefault(part, len(siblings))))
            return tuple(ranks)

        items = sorted(items, key=lambda kv: path_rank(kv[0]))
    return items


def _fits(source: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Equal shapes, or equal once sizes of 1 are dropped (Linear vs 1x1 conv, (C, 1, 1) vs (C,))."""
    return source == target or [d for d in source if d != 1] == [d for d in target if d != 1]


def convert_state_dict(source: dict[str, torch.Tensor], model: nn.Module, reference: str = "") -> dict[str, torch.Tensor]:
    """Map ``source`` (a reference model's state dict) onto ``model``'s keys.

    Auxiliary heads the source lacks (torchvision's GoogLeNet without ``aux_logits``) keep their
    initial values: they are left out of the result, so load it with ``strict=False`` or use
    :func:`load_converted`.
    """
    target = model.state_dict()
    source_items = _reorder(source, LAYOUTS.get(reference))
    aux = tuple(f"{name}." for name in getattr(model, "aux_weights", {}))
    keys = list(target)
    if len(source_items) != len(keys):
        without_aux = [k for k in keys if not k.startswith(aux)] if aux else keys
        if len(source_items) == len(without_aux):
            keys = without_aux
        else:
            raise ConversionError(f"reference has {len(source_items)} tensors, the architecture {len(keys)}"
                                  f"{f' ({len(without_aux)} without auxiliary heads)' if aux else ''}: "
                                  "not the same network")
    out = {}
    for (src_key, tensor), key in zip(source_items, keys):
        if not _fits(tuple(tensor.shape), tuple(target[key].shape)):
            raise ConversionError(f"reference '{src_key}' has shape {tuple(tensor.shape)} but '{key}' needs "
                                  f"{tuple(target[key].shape)} (different classes or layers?)")
        out[key] = tensor.detach().reshape(target[key].shape).clone()
    return out


def load_converted(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Load a converted state dict; only auxiliary-head keys may be missing."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    aux = tuple(f"{name}." for name in getattr(model, "aux_weights", {}))
    missing = [k for k in missing if not (aux and k.startswith(aux))]
    if missing or unexpected:
        raise ConversionError(f"weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a file (or a Lightning checkpoint's), unpickled safely (``weights_only=True``)."""
    return read_state_dict(path, "weights file", ConversionError)


SOURCES = ("torchvision", "timm")  # libraries whose models `import-weights` reads


def reference_state_dict(name: str, from_file: str | Path | None = None, source: str = "torchvision"
                         ) -> dict[str, torch.Tensor]:
    """A torchvision or timm model's state dict: from a local file, or downloaded by that library."""
    if source not in SOURCES:
        raise ConversionError(f"unknown weights source '{source}'; known: {', '.join(SOURCES)}")
    if from_file is not None:
        return load_state_file(from_file)
    try:
        if source == "timm":
            import timm

            if not timm.is_model(name):
                raise ConversionError(f"unknown timm model '{name}'")
            return timm.create_model(name, pretrained=True).state_dict()
        import torchvision

        try:
            weights = torchvision.models.get_model_weights(name).DEFAULT
        except (KeyError, ValueError):
            raise ConversionError(f"unknown torchvision model '{name}'") from None
        return weights.get_state_dict(progress=False)
    except ConversionError:
        raise
    except Exception as err:  # no network here, or a failed download
        raise ConversionError(f"cannot download {source} '{name}' weights ({type(err).__name__}); "
                              f"download them elsewhere and pass --from-file FILE.pth") from None


__all__ = ["ConversionError", "LAYOUTS", "SOURCES", "convert_state_dict", "load_converted", "load_state_file",
           "reference_state_dict", "save_atomic"]
