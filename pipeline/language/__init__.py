"""The architecture language: safe YAML loading, variables, planning and building the graph.

A file becomes a model in two steps: ``plan_model`` (``plan``) validates it and measures every node
without weights; ``materialize`` (``build``) constructs the planned blocks for real.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .build import materialize
from .model import AuxOutput, Graph, GraphNet, TrainOutput
from .plan import plan_model
from .plans import ModelPlan

__all__ = ["AuxOutput", "Graph", "GraphNet", "ModelPlan", "TrainOutput", "build_model", "materialize", "plan_model"]


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
