"""Human-readable views of a model plan: a per-node table and JSON (diagrams: pipeline/diagram.py)."""
from __future__ import annotations

from pathlib import Path

from .language.plans import ModelPlan, NodePlan


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape)


def _inputs(node: NodePlan, previous: str | None) -> str:
    if list(node.inputs) == [previous]:
        return ""
    return ",".join(node.inputs)


def table(plan: ModelPlan, analysis=None) -> str:
    """Every top-level node with its block, inputs, output shape, parameters and MACs (and, given
    an ``analysis.Analysis``, receptive field, stride and activation memory)."""
    rows = [("node", "block", "from", "output", "params", "MACs")]
    if analysis is not None:
        from .analysis import show_bytes, show_field

        rows[0] += ("RF", "stride", f"act x{analysis.batch}")
    previous = "input"
    for node in plan.nodes:
        block = node.block + (f" x{len(node.reps)}" if len(node.reps) != 1 else "")
        name = node.name + (f"  [aux {node.aux:g}]" if node.aux is not None else "")
        rows.append((name, block, _inputs(node, previous), _shape(node.out_shape), f"{node.params:,}",
                     _human(node.macs)))
        if analysis is not None:
            stats = analysis.nodes[node.name]
            rows[-1] += (show_field(stats.field), show_field(stats.field, "jump"), show_bytes(stats.activation_bytes))
        if node.aux is None:
            previous = node.name
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"{plan.name}: input {_shape(plan.in_shape)} -> output {_shape(plan.out_shape)} ({plan.source})"]
    for index, row in enumerate(rows):
        cells = [c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    aux_params = sum(n.params for n in plan.nodes if n.aux is not None) if plan.aux else 0
    lines.append("")
    lines.append(f"parameters: {plan.params:,} ({_human(plan.params)})"
                 + (f"; {plan.params - aux_params:,} without auxiliary heads" if plan.aux else ""))
    lines.append(f"MACs per image: {plan.macs:,} ({_human(plan.macs)})"
                 + (f"; inference (no auxiliary heads): {_human(plan.inference_macs)}" if plan.aux else ""))
    if plan.aux:
        lines.append("auxiliary outputs: " + ", ".join(f"{k} (loss weight {v:g})" for k, v in plan.aux.items()))
    if analysis is not None:
        from .analysis import lines as analysis_lines

        lines += analysis_lines(analysis)
    return "\n".join(lines)


def as_json(plan: ModelPlan, analysis=None) -> dict:
    out = {
        "name": plan.name,
        "source": plan.source,
        "input": list(plan.in_shape),
        "output": list(plan.out_shape),
        "params": plan.params,
        "macs": plan.macs,
        "inference_macs": plan.inference_macs,
        "aux": plan.aux,
        "vars": plan.vars,
        "nodes": [
            {"name": n.name, "block": n.block, "from": list(n.inputs), "repeat": len(n.reps),
             "output": list(n.out_shape), "params": n.params, "macs": n.macs, "aux": n.aux}
            for n in plan.nodes
        ],
    }
    if analysis is not None:  # receptive field, stride, activation and training memory
        from .analysis import as_json as analysis_json

        extra = analysis_json(analysis, plan)
        for node in out["nodes"]:
            node.update(extra["nodes"][node["name"]])
        out.update({k: v for k, v in extra.items() if k != "nodes"})
    return out


def zoo_table(folder: str | Path = "architectures") -> str:
    """A Markdown table of every architecture file in ``folder``: parameters, MACs, input."""
    from .language import plan_model

    rows = ["| file | net | input | parameters | MACs (inference) |", "|---|---|---|---:|---:|"]
    for path in sorted(Path(folder).glob("*.yaml")):
        plan = plan_model(path)
        aux = " (+aux heads)" if plan.aux else ""
        rows.append(f"| `{path.name}` | {plan.name}{aux} | {_shape(plan.in_shape)} | {plan.params:,} | "
                    f"{_human(plan.inference_macs)} |")
    return "\n".join(rows) + "\n"
