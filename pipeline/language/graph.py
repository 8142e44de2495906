"""Kept for modules that import the plan's types and ``materialize`` from here (summary, analysis,
diagram, cli): the types are in ``plans``, the builders in ``build``."""
from __future__ import annotations

from .build import materialize
from .plans import GraphPlan, ModelPlan, NodePlan

__all__ = ["GraphPlan", "ModelPlan", "NodePlan", "materialize"]
