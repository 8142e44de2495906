"""Bring torchvision's weights into YAML-built models.

The zoo's blocks register their layers in the same order as torchvision's reference modules, so
a reference state dict converts *positionally*: its entries are paired in order with the YAML
model's, every pair's shape is checked, and the first mismatch is reported by both names. Where a
reference registers modules in another order than the paper's graph (GoogLeNet puts its auxiliary
heads last), a short table says which top-level modules come where.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .checkpoints import read_state_dict, save_atomic
from .errors import ArchError

# torchvision top-level module order where it differs from the YAML files' node order
SOURCE_ORDER: dict[str, list[str]] = {
    "googlenet": ["conv1", "conv2", "conv3", "inception3a", "inception3b", "inception4a", "aux1", "inception4b",
                  "inception4c", "inception4d", "aux2", "inception4e", "inception5a", "inception5b", "fc"],
}


class ConversionError(ArchError):
    """The reference weights do not fit the architecture (wrong model, classes or layer order)."""


def _reorder(state: dict[str, torch.Tensor], order: list[str] | None) -> list[tuple[str, torch.Tensor]]:
    items = list(state.items())
    if not order:
        return items
    rank = {name: i for i, name in enumerate(order)}
    unknown = sorted({k.split(".")[0] for k, _ in items} - set(rank))
    if unknown:
        raise ConversionError(f"reference weights have modules the conversion table does not place: {unknown}")
    return sorted(items, key=lambda kv: rank[kv[0].split(".")[0]])  # stable: keeps order inside a module


def convert_state_dict(source: dict[str, torch.Tensor], model: nn.Module, reference: str = "") -> dict[str, torch.Tensor]:
    """Map ``source`` (a reference model's state dict) onto ``model``'s keys.

    Auxiliary heads the source lacks (torchvision's GoogLeNet without ``aux_logits``) keep their
    initial values: they are left out of the result, so load it with ``strict=False`` or use
    :func:`load_converted`.
    """
    target = model.state_dict()
    source_items = _reorder(source, SOURCE_ORDER.get(reference))
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
        if tuple(tensor.shape) != tuple(target[key].shape):
            raise ConversionError(f"reference '{src_key}' has shape {tuple(tensor.shape)} but '{key}' needs "
                                  f"{tuple(target[key].shape)} (different classes or layers?)")
        out[key] = tensor.detach().clone()
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


def reference_state_dict(name: str, from_file: str | Path | None = None) -> dict[str, torch.Tensor]:
    """A torchvision model's state dict: from a local file, or downloaded by torchvision."""
    if from_file is not None:
        return load_state_file(from_file)
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (KeyError, ValueError):
        raise ConversionError(f"unknown torchvision model '{name}'") from None
    try:
        return weights.get_state_dict(progress=False)
    except Exception as err:  # no network here, or a failed download
        raise ConversionError(f"cannot download torchvision '{name}' weights ({type(err).__name__}); "
                              f"download them elsewhere and pass --from-file FILE.pth") from None


__all__ = ["ConversionError", "SOURCE_ORDER", "convert_state_dict", "load_converted", "load_state_file",
           "reference_state_dict", "save_atomic"]
