"""Validated plan -> nn.Module, and the language's entry points.

``materialize`` constructs the blocks that ``plan_model`` (in ``plan``) measured, for real, and
initialises them; ``build_model`` is both steps. Reading documents is in ``document``, init
schemes in ``init``; the names below are re-exported for code that imports them from here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from torch import nn

from ..blocks import Block
from ..errors import ArchError, BlockError
from .document import load_document
from .init import INIT_SCHEMES
from .model import Graph, GraphNet
from .plan import CompositeBlock, GraphPlan, ModelPlan, NodePlan, PythonBlock, plan_graph, plan_model

__all__ = ["CompositeBlock", "GraphPlan", "INIT_SCHEMES", "ModelPlan", "NodePlan", "PythonBlock", "build_model",
           "load_document", "materialize", "materialize_graph", "plan_graph", "plan_model"]


def materialize_graph(plan: GraphPlan, top: ModelPlan | None = None) -> Graph:
    nodes = []
    for node in plan.nodes:
        try:  # planning ran the same constructors, so only file I/O (e.g. timm weights) can fail here
            modules = [node.factory.materialize(shapes, rep) for shapes, rep in node.reps]
        except BlockError as err:
            raise ArchError(str(err), node.loc, node.name) from None
        module = modules[0] if len(modules) == 1 else nn.Sequential(*modules) if modules else nn.Identity()
        local = [i.rsplit(".", 1)[-1] if i != "input" else i for i in node.inputs]
        nodes.append((node.name.rsplit(".", 1)[-1], module, tuple(local), node.factory.merges))
    output = plan.output.rsplit(".", 1)[-1]
    if top is None:
        return Graph(nodes, output)
    return GraphNet(nodes, output, top.aux, top.in_shape, top.name, top.source)


def materialize(plan: ModelPlan) -> GraphNet:
    """Construct the planned model with real weights, initialised by the file's scheme."""
    model = materialize_graph(plan, plan)
    scheme = INIT_SCHEMES[plan.init]
    for module in model.modules():
        scheme(module)
    for module in model.modules():  # block-specific init last (e.g. zero-init of residual branches)
        if isinstance(module, Block):
            module.init_weights()
    if plan.norm_momentum is not None:  # a training setting of the whole net, like init: no block needs it
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = plan.norm_momentum
    return model


def build_model(source: str | Path | Mapping, input_shape: tuple[int, ...] | None = None,
                **var_overrides: Any) -> GraphNet:
    """Build the ``nn.Module`` an architecture file declares.

    Args:
        source: path of a YAML architecture file, or the same content as a mapping.
        input_shape: replaces the file's ``input`` (C, H, W) or (C, L).
        **var_overrides: new values for variables the file declares in ``vars`` (e.g. ``classes=10``).

    Raises:
        ArchError: for any mistake in the file, with its ``FILE:LINE:COL`` location.
    """
    return materialize(plan_model(source, input_shape, **var_overrides))
