"""Evaluation: test-time crops (center, flip, ten, googlenet144, multi-scale), the evaluator that
averages nets and crops with exact metrics under DDP, and reports (JSON, confusion matrix CSV/PNG,
predict CSV). Below training: it knows nets only as ``Member`` callables, never the LightningModule."""
from .crops import MODES, Crop, CropMode, crop_boxes, make_crops
from .evaluator import EvalConfig, EvaluationData, EvaluationSteps, Evaluator, Member, combine, whole_image_side
from .reports import EvaluationReport, PredictionWriter

__all__ = ["MODES", "Crop", "CropMode", "EvalConfig", "EvaluationData", "EvaluationReport", "EvaluationSteps",
           "Evaluator", "Member", "PredictionWriter", "combine", "crop_boxes", "make_crops", "whole_image_side"]
