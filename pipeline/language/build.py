"""Plan -> nn.Module: the builders.

``materialize`` constructs, for real, the blocks that planning measured, through each node's
factory (a composite block builds its body with ``materialize_graph`` again), then initialises
them: the file's scheme first, each block's own ``init_weights`` last.
"""
from __future__ import annotations

from torch import nn

from ..blocks import Block
from ..errors import ArchError, BlockError
from .init import INIT_SCHEMES
from .model import Graph, GraphNet
from .plans import GraphPlan, ModelPlan


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
        return Graph(nodes, output, plan.inputs)
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
