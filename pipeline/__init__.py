"""Declarative CNN training: architectures as YAML graphs of blocks, trained with Lightning."""
from .errors import ArchError
from .language import AuxOutput, GraphNet, TrainOutput, build_model, plan_model

__all__ = ["ArchError", "AuxOutput", "GraphNet", "TrainOutput", "build_model", "plan_model"]
