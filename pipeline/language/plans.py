"""What planning produces, and the contract of a block factory that planning and building rely on.

A plan is every node's shape, parameters and MACs, known before one weight is allocated. A node
names its block type through a :class:`BlockFactory`: the factory measures one copy of the block
(:meth:`BlockFactory.plan`, which returns :class:`Measured`) and later constructs it for real
(:meth:`BlockFactory.materialize`) from what that measurement kept: a Python block's keyword
arguments, or a composite block's own sub-plan.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Mapping, Protocol, TypeVar

from torch import nn

from ..errors import Loc
from .loader import LocDict
from .model import needed_nodes
from .values import Binding, Scope

Shape = tuple[int, ...]
B = TypeVar("B")  # what a factory keeps from planning to build a block: keyword arguments, or a sub-plan


@dataclass(frozen=True)
class Measured(Generic[B]):
    """One copy of a block, planned: what building it takes, and what it was measured to produce."""

    build: B
    out_shape: Shape
    params: int
    macs: int


class Planner(Protocol):
    """What a factory may ask of the planning run it is measured in."""

    device: str  # where blocks are constructed to be measured: 'meta', weightless
    file_scope: Scope  # the file's variables, which a composite block's body reads
    stack: list[tuple[str, str]]  # (composite block, node path) being expanded, to bound recursion
    measured: dict  # measurements by (block class, input shapes, arguments): a repeated node is measured once

    def graph(self, nodes: LocDict, in_shape: Shape, scope: Scope, prefix: str, owner: LocDict) -> GraphPlan:
        """Plan a composite block's body: a graph of its own, its nodes named ``prefix + name``."""
        ...


class BlockFactory(Protocol[B]):
    """A block type as planning and building see it: a Python block class, or a composite in YAML."""

    merges: bool  # takes a list of inputs (concat, add) instead of one
    inputs: tuple[str, ...]  # the names of a fixed number of inputs (a composite's `inputs:`); () for any number
    params: Mapping[str, Any]  # the arguments a node may give it, by name
    required: tuple[str, ...]  # those a node must give it

    def plan(self, in_shapes: list[Shape], args: dict[str, Binding], ctx: Planner, node: str,
             loc: Loc | None) -> Measured[B]:
        """Check ``args`` and measure one copy on ``in_shapes``; raise ArchError for any mistake."""
        ...

    def materialize(self, in_shapes: list[Shape], build: B) -> nn.Module:
        """Construct the measured copy with real weights."""
        ...


@dataclass
class NodePlan(Generic[B]):
    """One node, fully resolved: everything ``materialize`` and ``summary`` need."""

    name: str  # dotted path for nested nodes, as in state-dict keys
    block: str
    inputs: tuple[str, ...]
    in_shapes: list[Shape]
    out_shape: Shape
    params: int
    macs: int
    loc: Loc | None
    factory: BlockFactory[B]
    reps: list[tuple[list[Shape], B]]  # per repetition (``repeat:``): input shapes and the factory's build
    aux: float | None = None


@dataclass
class GraphPlan:
    nodes: list[NodePlan]
    output: str
    in_shape: Shape
    out_shape: Shape
    inputs: tuple[str, ...] = ()  # a composite's named inputs (`input` is the first), read as nodes

    @property
    def params(self) -> int:
        return sum(n.params for n in self.nodes)

    @property
    def macs(self) -> int:
        return sum(n.macs for n in self.nodes)


@dataclass
class ModelPlan(GraphPlan):
    name: str = ""
    source: str = ""
    aux: dict[str, float] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    init: str = "default"
    norm_momentum: float | None = None  # of every batch norm's running statistics; None = PyTorch's 0.1
    file_input: tuple[int, ...] | None = None  # the file's own 'input' (in_shape may be an override)

    @property
    def inference_macs(self) -> int:
        """MACs of an eval-mode forward: auxiliary-only nodes are not run."""
        needed = needed_nodes(((n.name, n.inputs) for n in self.nodes), (self.output,))
        return sum(n.macs for n in self.nodes if n.name in needed)
