"""Receptive field, effective stride, activation memory and a training-memory estimate of a plan.

Everything is computed on weightless meta tensors from the plan alone, like shapes and MACs:

* receptive field / stride: each block reports its own (``Block.receptive_field``, traced by
  default), and the graph composes them along edges, taking the larger window where paths merge;
  composite blocks are walked through their own sub-graphs.
* memory: each block runs one meta forward at the real batch size under autograd's saved-tensor
  hooks, so what backward will keep (inputs of convs, batch-norm statistics, max-pool indices,
  dropout masks) is counted exactly, each tensor once even when two nodes save it.
  The estimate of peak training memory adds weights, optimizer state, the input batch, the saved
  activations and weight gradients alive together at the worst point of backward, and a transient
  of two of the largest activations (a gradient flowing in and one flowing out).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .blocks.receptive import Field
from .language.plans import GraphPlan, ModelPlan, NodePlan

# optimizer state tensors per parameter (torch.optim's and the usual extras); unknown: 2 (Adam-like)
OPTIMIZER_STATE = {"sgd": 1, "sgd_nesterov": 1, "sgd_plain": 0, "adam": 2, "adamw": 2, "nadam": 2, "radam": 2,
                   "adamax": 2, "adadelta": 2, "adagrad": 1, "rmsprop": 1, "lion": 1, "lamb": 2, "lars": 1}
PRECISIONS = {"32": torch.float32, "bf16": torch.bfloat16, "16": torch.float16}


@dataclass
class NodeStats:
    field: Field | None  # None when the node has no spatial dims to begin with (a flat input)
    activation_bytes: int  # the node's output(s) for the batch
    saved_bytes: int  # what backward keeps from this node (its own tensors, not counted elsewhere)


@dataclass
class Analysis:
    batch: int
    precision: str
    optimizer: str
    nodes: dict[str, NodeStats]
    field: Field | None  # of the output
    features_field: Field | None  # of the last node before the output sees the whole input
    memory: dict[str, int] = field(default_factory=dict)  # estimate of peak training memory, by part

    @property
    def saved_bytes(self) -> int:
        """Everything autograd keeps for backward after a forward (each tensor once)."""
        return sum(s.saved_bytes for s in self.nodes.values())

    @property
    def train_memory_bytes(self) -> int:
        return sum(self.memory.values())


class _Walker:
    def __init__(self, batch: int, dtype: torch.dtype):
        self.batch, self.dtype = batch, dtype
        self.cache: dict = {}
        self.counted: set[str] = set()  # tensors already counted as saved, by name
        self.saved = 0  # bytes backward keeps, so far

    def module(self, node: NodePlan, shapes, kwargs) -> torch.nn.Module:
        with torch.device("meta"):
            return node.factory.materialize(shapes, kwargs)

    def measure(self, node: NodePlan, shapes, kwargs):
        """(block fields, bytes saved inside, which inputs are saved, whether the output is saved)."""
        try:
            key = (node.factory.cls, tuple(shapes), repr(sorted(kwargs.items())))
        except AttributeError:
            key = None
        if key in self.cache:
            return self.cache[key]
        module = self.module(node, shapes, kwargs)
        shape_in = shapes if node.factory.merges else shapes[0]
        fields = module.receptive_field(shape_in) if len(shapes[0]) > 1 else None
        module.to(self.dtype)
        module.train()
        try:
            xs, y, saved = self._saved(module, node, shapes, self.batch)
        except ValueError:
            # batch norm in training refuses one value per channel (batch 1 at 1x1, as in Inception-v3's
            # aux head): measure at batch 2, where what backward saves is twice as large
            xs, y, saved = self._saved(module, node, shapes, 2)
            saved = {k: n * self.batch // 2 for k, n in saved.items()}
        inputs = [x.untyped_storage()._cdata in saved for x in xs]
        outputs = [t for t in (y if isinstance(y, (list, tuple)) else [y]) if isinstance(t, torch.Tensor)]
        output_saved = any(t.untyped_storage()._cdata in saved for t in outputs)
        boundary = {x.untyped_storage()._cdata for x in xs} | {t.untyped_storage()._cdata for t in outputs}
        inside = sum(n for k, n in saved.items() if k not in boundary)
        result = (fields, inside, inputs, output_saved)
        if key is not None:
            self.cache[key] = result
        return result

    def _saved(self, module: torch.nn.Module, node: NodePlan, shapes, batch: int):
        """Run ``module`` on meta inputs of ``batch``; returns the inputs, output and the bytes backward
        keeps, by storage."""
        state = {t.untyped_storage()._cdata for t in [*module.parameters(), *module.buffers()]}
        # inputs that need grad, as inside a network: a block without weights (a pool) saves too
        xs = [torch.empty((batch, *s), device="meta", dtype=self.dtype, requires_grad=True) for s in shapes]
        saved: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            storage = t.untyped_storage()
            if storage._cdata not in state:
                saved[storage._cdata] = storage.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            y = module(xs if node.factory.merges else xs[0])
        return xs, y, saved

    def bytes_of(self, shape) -> int:
        return self.batch * math.prod(shape) * torch.empty((), dtype=self.dtype).element_size()

    def graph(self, plan: GraphPlan, in_fields: list[Field | None], in_names: list[str],
              out: dict[str, NodeStats]) -> tuple[Field | None, str]:
        """Walk one graph from its inputs (several for a composite with named inputs); returns the
        output's field and the name of the tensor it is."""
        fields: dict[str, Field | None] = {"input": in_fields[0], **dict(zip(plan.inputs, in_fields))}
        names: dict[str, str] = {"input": in_names[0], **dict(zip(plan.inputs, in_names))}  # node -> its tensor
        for node in plan.nodes:
            local = node.name.rsplit(".", 1)[-1]
            sources = [i if i == "input" else i.rsplit(".", 1)[-1] for i in node.inputs]
            current = [fields[s] for s in sources]
            tensors = [names[s] for s in sources]
            saved_before = self.saved
            activation = 0
            for index, (shapes, arg) in enumerate(node.reps):
                if isinstance(arg, GraphPlan):  # a composite block: walk its own graph
                    f, name = self.graph(arg, current, tensors, out)
                    current, tensors = [f], [name]
                else:
                    block_fields, inside, inputs_saved, output_saved = self.measure(node, shapes, arg)
                    name = f"{node.name}#{index}"
                    self.saved += inside
                    for tensor, flag, shape in zip(tensors, inputs_saved, shapes):
                        self._count(tensor, flag, shape)
                    self._count(name, output_saved, _out_shape(node, index))
                    current, tensors = [self._compose(current, block_fields, node.factory.merges)], [name]
                activation += self.bytes_of(_out_shape(node, index))
            fields[local], names[local] = current[0], tensors[0]
            out[node.name] = NodeStats(fields[local], activation, self.saved - saved_before)
        output = plan.output.rsplit(".", 1)[-1]
        return fields[output], names[output]

    def _count(self, tensor: str, saved: bool, shape) -> None:
        if saved and tensor not in self.counted:
            self.counted.add(tensor)
            self.saved += self.bytes_of(shape)

    @staticmethod
    def _compose(inputs: list[Field | None], block, merges: bool) -> Field | None:
        if inputs[0] is None:
            return None
        if block is None:  # a block on flat inputs: what it sees is what its input saw
            block = [Field.unit(len(f.size)) for f in inputs] if merges else Field.unit(len(inputs[0].size))
        if not merges:
            return inputs[0].then(block)
        result = None
        for f, b in zip(inputs, block):
            composed = f.then(b)
            result = composed if result is None else result.union(composed)
        return result


def _out_shape(node: NodePlan, index: int):
    return node.out_shape if index == len(node.reps) - 1 else node.reps[index + 1][0][0]


def analyse(plan: ModelPlan, batch: int = 1, precision: str = "32", optimizer: str = "sgd") -> Analysis:
    """Receptive fields, strides and memory of ``plan`` for ``batch`` samples at ``precision``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    walker = _Walker(batch, dtype)
    in_field = Field.unit(len(plan.in_shape) - 1) if len(plan.in_shape) > 1 else None
    walker.counted.add("input")  # the input batch is counted below, whoever saves it
    stats: dict[str, NodeStats] = {}
    out_field, _ = walker.graph(plan, [in_field], ["input"], stats)
    features = None
    for node in plan.nodes:  # the last field before the main path pools everything
        f = stats[node.name].field
        if f is not None and not f.whole and node.aux is None:
            features = f
    params = plan.params
    largest = max((s.activation_bytes // max(1, len(n.reps)) for n, s in
                   ((n, stats[n.name]) for n in plan.nodes)), default=0)
    # Backward walks the nodes in reverse: node k's saved tensors are freed after its gradients
    # exist, so the peak is the largest (saved up to k) + (weight gradients from k on), not their sum.
    saved = [stats[n.name].saved_bytes for n in plan.nodes]
    grads = [4 * n.params for n in plan.nodes]
    saved_at_peak, grads_at_peak = max(((sum(saved[:k + 1]), sum(grads[k:])) for k in range(len(saved))),
                                       key=sum, default=(0, 0))
    memory = {
        "weights": 4 * params,
        "optimizer_state": 4 * params * OPTIMIZER_STATE.get(optimizer.lower(), 2),
        "input": batch * math.prod(plan.in_shape) * 4,
        "saved_activations": saved_at_peak,
        "gradients": grads_at_peak,
        "transient": 2 * largest,
    }
    if dtype != torch.float32:  # autocast keeps a low-precision copy of each weight for backward
        memory["weight_copies"] = params * torch.empty((), dtype=dtype).element_size()
    return Analysis(batch, precision, optimizer, {n.name: stats[n.name] for n in plan.nodes}, out_field,
                    features, memory)


def _number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else round(x, 3)


def field_json(f: Field | None, input_sizes: tuple[int, ...] = ()) -> dict:
    """``receptive_field`` and ``stride`` per spatial dim (null for flat inputs), for --json. A node
    sees the whole input after a global reduction, or when its window covers ``input_sizes``."""
    if f is None:
        return {"receptive_field": None, "stride": None, "sees_whole_input": False}
    covers = bool(input_sizes) and all(s >= d for s, d in zip(f.size, input_sizes))
    return {"receptive_field": [_number(s) for s in f.size], "stride": [_number(j) for j in f.jump],
            "sees_whole_input": f.whole or covers}


def show_field(f: Field | None, what: str = "size") -> str:
    """'427', '7x3' or 'all' (the node sees the whole input), for the table."""
    if f is None:
        return ""
    if what == "size" and f.whole:
        return "all"
    values = [_number(v) for v in (f.size if what == "size" else f.jump)]
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


def show_bytes(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def as_json(a: Analysis, plan: ModelPlan) -> dict:
    """The top-level keys ``summary --json`` adds, and the per-node ones (by node name)."""
    features = field_json(a.features_field)
    return {
        "receptive_field": features["receptive_field"],
        "stride": features["stride"],
        "batch": a.batch,
        "precision": a.precision,
        "optimizer": a.optimizer,
        "train_memory_bytes": a.train_memory_bytes,
        "train_memory": dict(a.memory),
        "nodes": {name: {**field_json(s.field, tuple(plan.in_shape[1:])), "activation_bytes": s.activation_bytes,
                         "saved_bytes": s.saved_bytes} for name, s in a.nodes.items()},
    }


def lines(a: Analysis) -> list[str]:
    """The summary table's closing lines: receptive field and the memory estimate."""
    out = []
    if a.features_field is not None:
        whole = " (then pooled over the whole input)" if a.field is not None and a.field.whole else ""
        out.append(f"receptive field: {show_field(a.features_field)}, stride {show_field(a.features_field, 'jump')}"
                   f"{whole}")
    parts = ", ".join(f"{k.replace('_', ' ')} {show_bytes(v)}" for k, v in a.memory.items())
    out.append(f"training memory, batch {a.batch}, precision {a.precision}, {a.optimizer}: about "
               f"{show_bytes(a.train_memory_bytes)} ({parts})")
    return out
