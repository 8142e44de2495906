"""Embed a timm model as one node, so YAML nets can start from timm backbones.

Only models in timm's own registry can be named (no import of arbitrary Python); nothing is
downloaded: pretrained weights come from a local file (``weights:``), read with weights_only=True.
"""
from __future__ import annotations

import torch

from ..checkpoints import read_state_dict
from ..errors import BlockError, close_matches
from .base import Block, Shape, spatial_dims
from .registry import register


@register("timm")
class Timm(Block):
    """A timm model: pooled features (C,) by default, or a feature map with ``features_only``.

    ``out_index`` picks the stage of a features-only model (-1 = last). ``weights`` is a local
    state-dict file of the timm model (e.g. saved from ``timm.create_model(name, pretrained=True)``).
    """

    def __init__(self, in_shape: Shape, *, model: str, features_only: bool = False, out_index: int = -1,
                 pool: bool = True, weights: str | None = None):
        super().__init__()
        import timm

        spatial_dims(in_shape, "timm", (2,))
        if not timm.is_model(model):
            raise BlockError(f"unknown timm model '{model}'{close_matches(model, timm.list_models())}")
        kwargs = {"in_chans": in_shape[0], "pretrained": False}
        if features_only:
            self.net = timm.create_model(model, features_only=True, out_indices=(out_index,), **kwargs)
        else:
            self.net = timm.create_model(model, num_classes=0, global_pool="avg" if pool else "", **kwargs)
        self.features_only = features_only
        if weights and not next(self.net.parameters()).is_meta:  # planning runs on meta: no file I/O
            self.load(weights)

    def load(self, path: str) -> None:
        state = read_state_dict(path, "timm weights file", BlockError)
        own = self.net.state_dict()
        # the classifier, and stages a features-only model cut off, are not needed
        missing = [k for k in own if k not in state]
        wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
        if missing or wrong:
            raise BlockError(f"timm weights '{path}' do not fit model: missing {missing[:3]}, wrong shape {wrong[:3]}")
        self.net.load_state_dict({k: state[k] for k in own})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        return y[-1] if self.features_only else y
