"""Training: the LightningModule, ensembles of its checkpoints, optimizer/schedule settings and the
LightningCLI entry point (cli.py, imported by ``python -m pipeline`` only: Lightning's CLI is slow to import)."""
from .ensemble import EnsembleConfig, EnsembleModule, load_member, prepare
from .module import ClassifierModule, TrainingDiverged, classification_loss
from .optim import OptimizerConfig, SchedulerConfig

__all__ = ["ClassifierModule", "EnsembleConfig", "EnsembleModule", "OptimizerConfig", "SchedulerConfig",
           "TrainingDiverged", "classification_loss", "load_member", "prepare"]
