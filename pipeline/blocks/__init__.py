"""The block library: one file per family. Importing this package registers every block."""
from .base import Block, ConvNormAct, Shape, act_layer, conv_layer, norm_layer, spatial_dims
from .registry import BLOCKS, register
from . import primitives, inception, residual, dense, transition, depthwise, dilated, timm_block, gating, channels, spatial  # noqa: F401,E402

__all__ = ["BLOCKS", "Block", "ConvNormAct", "Shape", "act_layer", "conv_layer", "norm_layer", "register",
           "spatial_dims"]
