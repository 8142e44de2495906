"""Ensembles of trained checkpoints, and the module that validate/test/predict run.

An ensemble is built from ``ClassifierModule`` checkpoints, so it lives next to that module; the
crops, averaging and metrics it shares with a single net are ``pipeline.evaluation``'s.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
from torch import nn

from ..checkpoints import class_names_in, read_checkpoint
from ..errors import ArchError
from ..evaluation import EvalConfig, EvaluationData, EvaluationSteps, Evaluator, Member, whole_image_side
from .module import ClassifierModule


@dataclass
class EnsembleConfig:
    """An ensemble of trained checkpoints, evaluated together (validate, test, predict).

    Args:
        checkpoints: Lightning checkpoints of this pipeline; architectures may differ, classes must not.
        weights: one weight per checkpoint for the average (normalised to sum to one); default: equal.
    """

    checkpoints: list[str] = field(default_factory=list)
    weights: list[float] | None = None


def load_member(path: str | Path, evaluation: EvalConfig | None = None) -> tuple[ClassifierModule, list[str] | None]:
    """A ClassifierModule rebuilt from a checkpoint's hyper-parameters and weights (EMA weights
    included: in eval mode it evaluates as it did in training), and its stored class names."""
    checkpoint = read_checkpoint(path)
    hparams, state = checkpoint.get("hyper_parameters"), checkpoint.get("state_dict")
    if not isinstance(hparams, dict) or "arch" not in hparams or not isinstance(state, dict):
        raise ArchError(f"{path}: not a checkpoint of this pipeline (no model hyper-parameters or state_dict)")
    accepted = inspect.signature(ClassifierModule.__init__).parameters
    # a file to initialise from or a node to freeze mean nothing once trained; compiling would only slow a test
    args = {k: v for k, v in hparams.items() if k in accepted} | {"init_from": None, "freeze_until": None,
                                                                  "compile": False, "evaluation": evaluation}
    try:
        module = ClassifierModule(**args)
        module.load_state_dict(state)
    except ArchError as err:
        raise ArchError(f"{path}: {err}") from None
    except RuntimeError as err:
        raise ArchError(f"{path}: weights do not fit {hparams['arch']}: {str(err).splitlines()[0]}") from None
    return module, class_names_in(checkpoint)


class EnsembleModule(EvaluationSteps, L.LightningModule):
    """Several checkpoints evaluated together: each member's class probabilities (over its own crops,
    at its own input size) are averaged with the given weights.

    Args:
        checkpoints: Lightning checkpoints of ClassifierModule; architectures may differ, classes must not.
        weights: one weight per checkpoint (normalised); default: equal.
        config: crops and averaging.
    """

    def __init__(self, checkpoints: list[str], weights: list[float] | None = None, config: EvalConfig | None = None):
        super().__init__()
        if not checkpoints:
            raise ArchError("ensemble.checkpoints: no checkpoint given")
        if weights is not None and (len(weights) != len(checkpoints) or min(weights) < 0 or sum(weights) <= 0):
            raise ArchError(f"ensemble.weights: need {len(checkpoints)} non-negative weights with a positive sum, "
                            f"got {list(weights)}")
        loaded = [load_member(p) for p in checkpoints]
        counts = {str(p): m.num_classes for p, (m, _) in zip(checkpoints, loaded)}
        if len(set(counts.values())) > 1:
            raise ArchError("ensemble.checkpoints: the checkpoints have different numbers of classes: "
                            + ", ".join(f"{p} {n}" for p, n in counts.items()))
        names = [n for _, n in loaded if n]
        if any(n != names[0] for n in names):
            raise ArchError("ensemble.checkpoints: the checkpoints were trained on different class names")
        self.nets = nn.ModuleList(m for m, _ in loaded)
        self.checkpoints = [str(p) for p in checkpoints]
        self.weights = [float(w) for w in weights] if weights is not None else [1.0] * len(checkpoints)
        self.class_names = names[0] if names else None
        self.num_classes = self.nets[0].num_classes
        self.evaluator = Evaluator(self.num_classes, config)
        self.save_hyperparameters({"checkpoints": self.checkpoints, "weights": self.weights})

    def eval_members(self) -> list[Member]:
        return [m for net, w in zip(self.nets, self.weights) for m in net.eval_members(w)]


def prepare(module: ClassifierModule, datamodule: EvaluationData | None, ensemble: EnsembleConfig | None = None,
            ckpt_path: str | None = None, check_classes: bool = True) -> ClassifierModule | EnsembleModule:
    """The module that validate/test/predict run (``module``, or an EnsembleModule of
    ``ensemble.checkpoints`` evaluated with ``module``'s evaluation settings), and the datamodule told
    what to load: for crops cut on tensors, whole images resized to the largest scale any member needs."""
    config = module.evaluator.config
    if ensemble is not None and ensemble.checkpoints:
        if ckpt_path:
            raise ArchError("give the checkpoints either as --ckpt_path or as --ensemble.checkpoints, not both")
        module = EnsembleModule(ensemble.checkpoints, ensemble.weights, config)
        if check_classes and datamodule is not None and module.num_classes != datamodule.num_classes:
            raise ArchError(f"ensemble.checkpoints: the checkpoints have {module.num_classes} classes, "
                            f"the data has {datamodule.num_classes}")
    data_shape = tuple(datamodule.input_shape) if datamodule is not None else None
    side = whole_image_side(config, module.eval_members(), data_shape)
    if datamodule is not None:
        datamodule.eval_resize = side
    return module


__all__ = ["EnsembleConfig", "EnsembleModule", "load_member", "prepare"]
