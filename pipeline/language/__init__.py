"""The architecture language: safe YAML loading, variables, and the graph builder."""
from .graph import ModelPlan, build_model, materialize, plan_model
from .model import AuxOutput, Graph, GraphNet, TrainOutput

__all__ = ["AuxOutput", "Graph", "GraphNet", "ModelPlan", "TrainOutput", "build_model", "materialize", "plan_model"]
