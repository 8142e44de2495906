"""Evaluation: test-time crops (center, flip, ten, googlenet144, multi-scale), ensembles of
checkpoints, exact metrics under DDP, and reports (JSON, confusion matrix CSV/PNG, predict CSV)."""
from .crops import MODES, Crop, crop_boxes, make_crops
from .ensemble import (EnsembleConfig, EnsembleModule, EvalConfig, Evaluator, Member, combine, load_member,
                       prepare)
from .reports import EvaluationReport, PredictionWriter

__all__ = ["MODES", "Crop", "EnsembleConfig", "EnsembleModule", "EvalConfig", "EvaluationReport", "Evaluator",
           "Member", "PredictionWriter", "combine", "crop_boxes", "load_member", "make_crops", "prepare"]
