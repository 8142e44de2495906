"""Hierarchical Graphviz diagrams of a plan (``summary --graph FILE --expand NAME --depth K``).

The top level shows one box per node: a repeated node is one box "x N", a merge (concat, add)
is a round node that its inputs visibly join, auxiliary heads and the nodes only they use are
orange and dashed, and every edge carries the shape flowing along it. A node can be opened as a
cluster: a composite block (written in YAML) shows its own graph, a built-in block its layers;
a repeated node shows its first copy, labelled "x N". ``depth`` opens every node down to that
level; ``expand`` opens nodes by name (``layer1``, ``inc3a``) or by block type (``inception``).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import torch
import torch.fx
from torch import nn

from .blocks.gating import DropPath
from .language.plans import GraphPlan, ModelPlan, NodePlan

AUX_FILL, MAIN_FILL, MERGE_FILL, GREY = "#fdebd0", "#eef3fb", "#e8f6ef", "#dddddd"


def _quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape)


def _params(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit} params"
    return f"{n} params" if n else ""


def _layer(module: nn.Module) -> str:
    """A one-line description of a torch layer: 'Conv2d 3x3 /2 64->128'."""
    name = type(module).__name__
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel = "x".join(map(str, module.kernel_size))
        stride = f" /{module.stride[0]}" if max(module.stride) > 1 else ""
        dilation = f" d{module.dilation[0]}" if max(module.dilation) > 1 else ""
        groups = f" g{module.groups}" if module.groups > 1 else ""
        return f"{name} {kernel}{stride}{dilation}{groups} {module.in_channels}->{module.out_channels}"
    if isinstance(module, nn.Linear):
        return f"{name} {module.in_features}->{module.out_features}"
    if hasattr(module, "kernel_size") and hasattr(module, "stride"):  # pools
        return f"{name} {module.kernel_size} /{module.stride}"
    return name


def _placeholder(module: nn.Module) -> bool:
    """An unset option of a block (an identity, a dropout or drop-path of rate 0, an empty Sequential):
    it passes its input through in every mode, so the diagram draws no box for it."""
    if isinstance(module, nn.Identity) or (isinstance(module, nn.Sequential) and len(module) == 0):
        return True
    return isinstance(module, (nn.modules.dropout._DropoutNd, DropPath)) and module.p == 0


class _Writer:
    def __init__(self, plan: ModelPlan, expand: set[str], depth: int):
        self.plan, self.expand, self.depth = plan, expand, depth
        self.lines: list[str] = []
        self.edges: list[str] = []
        self.indent = 1
        self.aux_only = {n.name for n in plan.nodes} - _main_path(plan)
        self.clusters = 0

    def emit(self, text: str) -> None:
        self.lines.append("  " * self.indent + text)

    def box(self, ident: str, label: str, **attrs: str) -> None:
        extra = "".join(f", {k}={_quote(v)}" for k, v in attrs.items())
        self.emit(f"{_quote(ident)} [label={_quote(label)}{extra}];")

    def edge(self, a: str, b: str, shape=None, dashed: bool = False, **attrs: str) -> None:
        parts = [f"label={_quote(' ' + _shape(shape))}"] if shape is not None else []
        if dashed:
            parts.append("style=dashed")
        parts += [f"{k}={_quote(v)}" for k, v in attrs.items()]
        # edges go at the top level: an edge written inside a cluster would pull both ends into it
        self.edges.append(f"  {_quote(a)} -> {_quote(b)}" + (f" [{', '.join(parts)}]" if parts else "") + ";")

    def opened(self, node: NodePlan, level: int) -> bool:
        if not node.reps:
            return False
        local = node.name.rsplit(".", 1)[-1]
        return level < self.depth or bool({node.name, local, node.block} & self.expand)

    def begin(self, label: str, style: str = "rounded", fill: str = "#fafafa") -> str:
        self.clusters += 1
        ident = f"cluster_{self.clusters}"
        self.emit(f"subgraph {ident} {{")
        self.indent += 1
        self.emit(f"label={_quote(label)}; style={_quote(style + ',filled')}; fillcolor={_quote(fill)}; "
                  f"labeljust=l;")
        return ident

    def end(self) -> None:
        self.indent -= 1
        self.emit("}")

    def graph(self, plan: GraphPlan, entries: list[tuple[str, tuple]], level: int) -> str:
        """Draw one graph whose inputs are the nodes ``entries`` (id, shape): its 'input' and, for a
        composite with named inputs, those; returns the id of its output."""
        ids: dict[str, str] = {"input": entries[0][0], **{n: e[0] for n, e in zip(plan.inputs, entries)}}
        shapes: dict[str, tuple] = {"input": entries[0][1], **{n: e[1] for n, e in zip(plan.inputs, entries)}}
        for node in plan.nodes:
            local = node.name.rsplit(".", 1)[-1]
            sources = [(ids[s], shapes[s]) for s in (i if i == "input" else i.rsplit(".", 1)[-1]
                                                     for i in node.inputs)]
            aux = node.name in self.aux_only
            if self.opened(node, level):
                ids[local] = self.cluster(node, sources, level, aux)
            else:
                ids[local] = self.leaf(node, sources, aux)
            shapes[local] = node.out_shape
        return ids[plan.output.rsplit(".", 1)[-1]]

    def leaf(self, node: NodePlan, sources, aux: bool) -> str:
        repeat = f" x{len(node.reps)}" if len(node.reps) != 1 else ""
        local = node.name.rsplit(".", 1)[-1]  # inside a cluster, the cluster names the rest
        attrs: dict[str, str] = {}
        if node.factory.merges:
            label = f"{node.block}\n{local}"
            attrs = {"shape": "ellipse", "fillcolor": MERGE_FILL}
        else:
            label = "\n".join(x for x in (local, node.block + repeat, _params(node.params)) if x)
        if node.aux is not None:
            label += f"\naux loss x{node.aux:g}"
        if aux:
            attrs.update(fillcolor=AUX_FILL, style="rounded,filled,dashed")
        self.box(node.name, label, **attrs)
        for source, shape in sources:
            self.edge(source, node.name, shape, dashed=aux)
        return node.name

    def cluster(self, node: NodePlan, sources, level: int, aux: bool) -> str:
        repeat = f"  x{len(node.reps)} (first copy shown)" if len(node.reps) > 1 else ""
        label = f"{node.name}: {node.block}{repeat}"
        if node.aux is not None:
            label += f"  [aux loss x{node.aux:g}]"
        shapes, first = node.reps[0]
        module = None
        if not isinstance(first, GraphPlan):
            with torch.device("meta"):
                module = node.factory.materialize(shapes, first)
            layers = list(module.children())
            if layers and all(map(_placeholder, layers)):  # nothing inside to draw (a dropout of rate 0)
                return self.leaf(node, sources, aux)
        self.begin(label, "rounded,dashed" if aux else "rounded", AUX_FILL if aux else "#fafafa")
        if module is None:  # a composite: its own graph, entered from the outer sources
            out = self.graph(first, sources, level + 1)
        else:
            out = self.traced(module, node.name, sources, aux, node.factory.merges)
            if out is None:  # forward not traceable (data-dependent control flow): the layers in order
                entry, out = self.layers(module, node.name, level + 1)
                for source, shape in sources:
                    self.edge(source, entry, shape, dashed=aux)
        self.end()
        return out

    def traced(self, module: nn.Module, prefix: str, sources, aux: bool, merges: bool) -> str | None:
        """A built-in block's own wiring, from torch.fx: its layers, joins and functions."""
        try:
            graph = _BlockTracer(module).trace(module)
        except Exception:  # noqa: BLE001 - any tracing failure just means the simpler drawing
            return None
        ids: dict[str, str | list] = {}
        for fx_node in graph.nodes:
            args = [a for a in _flat(fx_node.args) if hasattr(a, "op")]
            inputs = [ids[a.name] for a in args if a.name in ids]
            inputs = [i for item in inputs for i in (item if isinstance(item, list) else [item])]
            ident = f"{prefix}.{fx_node.name}"
            if fx_node.op == "placeholder":
                ids[fx_node.name] = [s for s, _ in sources] if merges else sources[0][0]
                continue
            if fx_node.op == "output":
                return inputs[0] if inputs else None
            if fx_node.op == "get_attr" or not inputs:
                continue
            target = fx_node.target if isinstance(fx_node.target, str) else getattr(fx_node.target, "__name__", "")
            if fx_node.op == "call_function" and target in ("getitem", "chunk", "split") or \
                    fx_node.op == "call_method" and target in ("chunk", "split", "flatten", "view", "contiguous") or \
                    fx_node.op == "call_module" and _placeholder(module.get_submodule(fx_node.target)):
                ids[fx_node.name] = inputs[0]  # plumbing or an unset option, not a step worth a box
                continue
            if fx_node.op == "call_module":
                sub = module.get_submodule(fx_node.target)
                self.box(ident, f"{fx_node.target}\n{_layer(sub)}", fillcolor="#ffffff")
            elif target in ("add", "cat", "mul", "iadd", "concat"):
                self.box(ident, target, shape="ellipse", fillcolor=MERGE_FILL)
            else:
                self.box(ident, target, shape="plaintext", style="")
            shown = {s: sh for s, sh in sources}  # shapes are known on the edges into the block
            for i in dict.fromkeys(inputs):
                self.edge(i, ident, shown.get(i), dashed=aux)
            ids[fx_node.name] = ident
        return None

    def layers(self, module: nn.Module, prefix: str, level: int) -> tuple[str, str]:
        """A built-in block's layers, in order (their wiring is the block's forward); (first, last) ids."""
        children = [(name, child) for name, child in module.named_children() if not _placeholder(child)]
        if not children:
            ident = prefix + "."
            self.box(ident, _layer(module), fillcolor=GREY)
            return ident, ident
        first = last = None
        for name, child in children:
            ident = f"{prefix}.{name}"
            has_children = any(True for _ in child.children())
            if has_children and level <= self.depth:
                self.begin(f"{name}: {type(child).__name__}")
                a, b = self.layers(child, ident, level + 1)
                self.end()
            else:
                a = b = ident
                label = f"{name}\n{_layer(child)}" if not has_children else f"{name}\n{type(child).__name__}"
                self.box(ident, label, fillcolor="#ffffff")
            if last is not None:
                self.edge(last, a, style="dotted", arrowhead="none")
            first, last = first or a, b
        return first, last


class _BlockTracer(torch.fx.Tracer):
    """Stops at a block's own layers (items of its ModuleLists count as its layers)."""

    def __init__(self, root: nn.Module):
        super().__init__()
        self.leaves = set()

        def collect(module: nn.Module, path: str) -> None:
            for name, child in module.named_children():
                if isinstance(child, (nn.ModuleList, nn.ModuleDict)):
                    collect(child, path + name + ".")
                else:
                    self.leaves.add(path + name)

        collect(root, "")

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return qualname in self.leaves or super().is_leaf_module(m, qualname)


def _flat(args) -> list:
    out = []
    for a in args:
        out += _flat(a) if isinstance(a, (list, tuple)) else [a]
    return out


def _main_path(plan: ModelPlan) -> set[str]:
    needed = {plan.output}
    for node in reversed(plan.nodes):
        if node.name in needed:
            needed.update(node.inputs)
    return needed


def to_dot(plan: ModelPlan, expand: list[str] | tuple[str, ...] = (), depth: int = 1) -> str:
    """DOT text of the plan: ``depth`` levels open (1: top-level nodes only), plus ``expand``."""
    w = _Writer(plan, set(expand), depth)
    w.emit("rankdir=TB; compound=true; newrank=true;")
    w.emit(f'node [shape=box, style="rounded,filled", fillcolor={_quote(MAIN_FILL)}, fontname="Helvetica"];')
    w.emit('edge [fontname="Helvetica", fontsize=10];')
    w.box("input", f"input\n{_shape(plan.in_shape)}", fillcolor=GREY, shape="ellipse")
    out = w.graph(plan, [("input", plan.in_shape)], 1)
    w.box("output", f"output\n{_shape(plan.out_shape)}", fillcolor=GREY, shape="ellipse")
    w.edge(out, "output", plan.out_shape)
    legend = "dashed orange: auxiliary heads (training only); round green: merges; edges: output shape"
    w.emit(f"label={_quote(plan.name + ' - ' + legend)}; labelloc=t; fontname=\"Helvetica\";")
    return f"digraph {_quote(plan.name)} {{\n" + "\n".join(w.lines + w.edges) + "\n}\n"


def unknown_expand(plan: ModelPlan, expand: list[str]) -> list[str]:
    """Names in ``expand`` that are neither a node nor a block type of the plan."""
    known: set[str] = set()

    def walk(graph: GraphPlan) -> None:
        for node in graph.nodes:
            known.update({node.name, node.name.rsplit(".", 1)[-1], node.block})
            for _, rep in node.reps:
                if isinstance(rep, GraphPlan):
                    walk(rep)

    walk(plan)
    return [name for name in expand if name not in known]


def write(plan: ModelPlan, path: str | Path, expand=(), depth: int = 1) -> tuple[Path, str]:
    """Write the diagram; SVG/PNG/PDF need Graphviz's ``dot``, otherwise the DOT text is written.

    Returns the file written and a note for the user (empty when the requested format was written).
    """
    path = Path(path)
    dot = to_dot(plan, expand, depth)
    fmt = path.suffix.lower().lstrip(".")
    if fmt in ("svg", "png", "pdf"):
        exe = shutil.which("dot")
        if exe:
            subprocess.run([exe, f"-T{fmt}", "-o", str(path)], input=dot.encode(), check=True, timeout=120,
                           capture_output=True)
            return path, ""
        path = path.with_suffix(".dot")
        path.write_text(dot)
        return path, f"Graphviz 'dot' is not installed; wrote DOT text to {path} (render it with: dot -T{fmt} {path})"
    path.write_text(dot)
    return path, ""
