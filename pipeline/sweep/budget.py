"""A trial's static figures (MACs, parameters, training memory) from its plan, before any weight exists.

The figures are those ``summary --json`` prints for the trial's architecture and variables at the
input the data will give (the file's declared input, or the data's ``image_size``/``channels``), with
``--batch``, ``--precision`` and ``--optimizer`` of the trial's config for the memory estimate.
Planning works on shapes only; the training-memory estimate runs meta tensors (no storage).
"""
from __future__ import annotations

from typing import Any

from ..errors import ArchError
from .config import get_option


def _input_shape(plan_input: tuple[int, ...], config: dict) -> tuple[int, ...] | None:
    """The data's input when its config sets a size; None: the file's declared input (the data follows)."""
    size, channels = get_option(config, "data.image_size"), get_option(config, "data.channels")
    if not isinstance(size, int) and not isinstance(channels, int):
        return None
    shape = list(plan_input)
    if isinstance(channels, int):
        shape[0] = channels
    if isinstance(size, int) and len(shape) == 3:
        shape[1:] = [size, size]
    return tuple(shape)


def _precision(value: Any) -> str:
    text = str(value or "32")
    return "bf16" if text.startswith("bf16") else "16" if text.startswith("16") else "32"


def static_figures(config: dict, wanted: set[str]) -> dict[str, float]:
    """The figures in ``wanted`` (keys of spec.STATIC) of the net that ``config`` trains."""
    from ..language import plan_model

    arch = get_option(config, "model.arch")
    if not arch:
        raise ArchError("model.arch: the fit config names no architecture file")
    variables = dict(get_option(config, "model.vars") or {})
    classes = get_option(config, "data.num_classes") or get_option(config, "model.num_classes")
    if isinstance(classes, int):
        variables.setdefault("classes", classes)
    plan = plan_model(arch, None, **variables)
    shape = _input_shape(tuple(plan.in_shape), config)
    if shape is not None and shape != tuple(plan.in_shape):
        plan = plan_model(arch, shape, **variables)
    figures: dict[str, float] = {"macs": plan.macs, "params": plan.params}
    if "train_memory" in wanted:
        from ..analysis import analyse

        batch = get_option(config, "data.batch_size") or 1
        optimizer = get_option(config, "model.optimizer.name") or "sgd"
        analysis = analyse(plan, int(batch), _precision(get_option(config, "trainer.precision")), str(optimizer))
        figures["train_memory"] = analysis.train_memory_bytes
    return {k: v for k, v in figures.items() if k in wanted}


def over_budget(figures: dict[str, float], budget: dict[str, float]) -> str | None:
    """Why a trial is over its budget, in one line, or None."""
    over = [f"{key} {figures[key]:,.0f} > {limit:,.0f}" for key, limit in budget.items() if figures[key] > limit]
    return f"over budget ({', '.join(over)}), from the plan: no weights built" if over else None

