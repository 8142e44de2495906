"""The runtime graph: an nn.Module that runs named nodes in order, keeping only live outputs."""
from __future__ import annotations

import re
from typing import Iterable, NamedTuple, Sequence

import torch
from torch import nn


class AuxOutput(NamedTuple):
    weight: float
    logits: torch.Tensor


class TrainOutput(NamedTuple):
    """What a model with auxiliary heads returns in training mode.

    ``logits`` is the main output; ``aux`` maps each auxiliary node's name to its loss weight
    and logits, e.g. ``{"aux1": AuxOutput(0.3, tensor), "aux2": AuxOutput(0.3, tensor)}``.
    The training loss is ``ce(logits) + sum(w * ce(l) for w, l in aux.values())``.
    """

    logits: torch.Tensor
    aux: dict[str, AuxOutput]


class Step(NamedTuple):
    name: str
    inputs: tuple[str, ...]
    merges: bool
    free: tuple[str, ...]  # outputs no later step needs: dropped to save memory


def needed_nodes(order: Iterable[tuple[str, Sequence[str]]], outputs: Iterable[str]) -> set[str]:
    """The nodes ``outputs`` depend on (themselves included); ``order`` is (name, inputs) in graph order."""
    needed = set(outputs)
    for name, inputs in reversed(list(order)):
        if name in needed:
            needed.update(inputs)
    return needed


def schedule(order: list[tuple[str, tuple[str, ...], bool]], outputs: tuple[str, ...]) -> tuple[Step, ...]:
    """Steps needed for ``outputs`` (ancestors only), each told which values it can free."""
    needed = needed_nodes(((n, i) for n, i, _ in order), outputs)
    kept = [(n, i, m) for n, i, m in order if n in needed]
    last_use: dict[str, int] = {}
    for index, (name, inputs, _) in enumerate(kept):
        for source in inputs:
            last_use[source] = index
    steps = []
    for index, (name, inputs, merges) in enumerate(kept):
        free = tuple(s for s in dict.fromkeys(inputs) if last_use[s] == index and s not in outputs)
        steps.append(Step(name, inputs, merges, free))
    return tuple(steps)


class Graph(nn.Module):
    """A DAG of named modules; ``forward`` returns the output node's value.

    Node modules are registered under their YAML names, so state-dict keys read like the file
    (``conv1.conv.weight``, ``3a.branch2.0.conv.weight``) and stay stable when other nodes change.
    """

    def __init__(self, nodes: list[tuple[str, nn.Module, tuple[str, ...], bool]], output: str,
                 input_names: tuple[str, ...] = ()):
        super().__init__()
        for name, module, _, _ in nodes:
            self.add_module(name, module)
        self._order = [(name, inputs, merges) for name, _, inputs, merges in nodes]
        self._output = output
        self._input_names = input_names  # a composite of several inputs: forward takes their list
        self._steps = schedule(self._order, (output,))

    def run(self, x: torch.Tensor | list[torch.Tensor], steps: tuple[Step, ...]) -> dict[str, torch.Tensor]:
        values = {"input": x[0], **dict(zip(self._input_names, x))} if self._input_names else {"input": x}
        for step in steps:
            module = self._modules[step.name]
            if step.merges:
                values[step.name] = module([values[s] for s in step.inputs])
            else:
                values[step.name] = module(values[step.inputs[0]])
            for source in step.free:
                del values[source]
        return values

    def forward(self, x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        return self.run(x, self._steps)[self._output]


class GraphNet(Graph):
    """A whole model built from an architecture file.

    In eval mode ``model(x)`` is the main logits tensor and auxiliary branches are not run at all
    (so inference and export never pay for them). In training mode a model with auxiliary heads of
    non-zero weight returns :class:`TrainOutput`; one without returns the logits tensor. A head of
    weight 0 is not run in training either.
    """

    def __init__(self, nodes, output: str, aux_weights: dict[str, float], input_shape: tuple[int, ...],
                 name: str = "", source: str = ""):
        super().__init__(nodes, output)
        self.input_shape = tuple(input_shape)
        self.arch_name = name
        self.source = source
        self.aux_weights = {head: float(weight) for head, weight in aux_weights.items()}  # 0 = switched off
        self._aux_frozen: set[str] = set()  # parameters frozen because only a switched-off head uses them
        self._held: set[str] = set()  # parameters frozen by the user (freeze_nodes): never unfrozen here
        self._schedule_training()

    def set_aux_weights(self, weights: dict[str, float]) -> None:
        """Set the loss weights of some auxiliary heads (the others keep theirs); 0 switches a head
        off. Raises ValueError for a head the net does not have or a negative weight."""
        for head, weight in weights.items():
            if head not in self.aux_weights:
                raise ValueError(f"no auxiliary head '{head}'; its heads: {', '.join(self.aux_weights) or 'none'}")
            if not weight >= 0:
                raise ValueError(f"auxiliary head '{head}': loss weight must be >= 0, got {weight}")
        self.aux_weights.update({head: float(weight) for head, weight in weights.items()})
        self._schedule_training()

    # attributes set on instances: node names must differ from them (language/plan.py refuses them);
    # the graph's own bookkeeping is private (_order, _output, ...) so that 'output' or 'order' can name a node
    INSTANCE_ATTRIBUTES = ("input_shape", "arch_name", "source", "aux_weights", "training")

    def switched_off_parameters(self) -> set[str]:
        """Names of the parameters frozen because only switched-off heads use them."""
        return set(self._aux_frozen)

    def freeze_nodes(self, names: list[str]) -> None:
        """Freeze these nodes' parameters for good (transfer learning): switching a head on again
        leaves them frozen."""
        for name in names:
            for key, parameter in self._modules[name].named_parameters(prefix=name):
                parameter.requires_grad_(False)
                self._held.add(key)

    def _schedule_training(self) -> None:
        # a head of weight 0 is not computed in training, and the weights only it uses are frozen:
        # an unused parameter would stall DDP, which waits for every gradient. Switched on again, a
        # head's weights train again (those the user froze stay frozen).
        active = tuple(head for head, weight in self.aux_weights.items() if weight > 0)
        self._train_steps = schedule(self._order, (self._output, *active))
        used = {s.name for s in self._train_steps}
        for step in schedule(self._order, (self._output, *self.aux_weights)):
            for key, parameter in self._modules[step.name].named_parameters(prefix=step.name):
                if step.name not in used and parameter.requires_grad:
                    parameter.requires_grad_(False)
                    self._aux_frozen.add(key)
                elif step.name in used and key in self._aux_frozen:
                    self._aux_frozen.discard(key)
                    parameter.requires_grad_(key not in self._held)

    def forward(self, x: torch.Tensor):
        active = {name: weight for name, weight in self.aux_weights.items() if weight > 0}
        if not (self.training and active):
            return self.run(x, self._steps)[self._output]
        values = self.run(x, self._train_steps)
        aux = {name: AuxOutput(weight, values[name]) for name, weight in active.items()}
        return TrainOutput(values[self._output], aux)

    def node_names(self) -> list[str]:
        return [name for name, _, _ in self._order]

    def without_aux(self) -> "GraphNet":
        """A copy-free view for export: the same modules minus auxiliary-only nodes."""
        needed = {s.name for s in self._steps}
        nodes = [(n, self._modules[n], i, m) for n, i, m in self._order if n in needed]
        return GraphNet(nodes, self._output, {}, self.input_shape, self.arch_name, self.source).train(self.training)


# what a node (or a composite's input) may be called: not a name the model object itself holds
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
RESERVED = {"input"} | {n for n in dir(GraphNet) if not n.startswith("_")} | set(GraphNet.INSTANCE_ATTRIBUTES)
