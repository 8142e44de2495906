"""Training: the LightningModule, optimizer/schedule settings and the LightningCLI entry point."""
from .module import ClassifierModule, TrainingDiverged, classification_loss
from .optim import OptimizerConfig, SchedulerConfig

__all__ = ["ClassifierModule", "OptimizerConfig", "SchedulerConfig", "TrainingDiverged", "classification_loss"]
