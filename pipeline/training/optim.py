"""Optimizer and learning-rate schedule settings, and the objects they build."""
from __future__ import annotations

import importlib
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from ..errors import ArchError


@dataclass
class OptimizerConfig:
    """The optimizer.

    Args:
        name: any ``torch.optim`` optimizer by its case-insensitive short name (sgd, the default, as
            in the ResNet papers; adam, adamw, adagrad, rmsprop, nadam, ...) or a class path
            (``torch.optim.SGD``, ``mypackage.MyOptimizer``).
        lr: base learning rate: for the global batch (per-device batch x devices x nodes x
            gradient accumulation), or, with ``scale_lr``, for a global batch of ``reference_batch``.
        momentum: momentum, for the optimizers that have one (SGD, RMSprop).
        nesterov: Nesterov momentum, for the optimizers that have it (SGD).
        weight_decay: L2 penalty (decoupled for AdamW).
        no_decay_norm_bias: exempt norm weights and all biases from weight decay.
        betas: the betas of the Adam family (Adam, AdamW, NAdam, RAdam, Adamax).
        scale_lr: scale ``lr`` with the global batch: "linear" (Goyal et al., 2017: lr x global /
            reference_batch; pair it with a warm-up of a few epochs), "sqrt", or "none".
        reference_batch: the global batch that ``lr`` is meant for when ``scale_lr`` is set.
        args: the optimizer's other arguments, e.g. ``{lr_decay: 0.0, eps: 1e-10}`` for Adagrad or
            ``{alpha: 0.9, centered: true}`` for RMSprop.
    """

    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    no_decay_norm_bias: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    scale_lr: Literal["none", "linear", "sqrt"] = "none"
    reference_batch: int = 256
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class SchedulerConfig:
    """The learning-rate schedule.

    Args:
        name: none, step, multistep, cosine or onecycle.
        warmup: length of a linear warm-up from ``warmup_start`` x lr (in ``interval`` units).
        warmup_start: warm-up starts at this fraction of the learning rate.
        interval: step the schedule every optimizer "step" or every "epoch".
        step_size: period of the step schedule.
        milestones: where the multistep schedule decays.
        gamma: decay factor of step/multistep.
        min_lr: floor of the cosine schedule, as a fraction of lr.
    """

    name: Literal["none", "step", "multistep", "cosine", "onecycle"] = "cosine"
    warmup: int = 0
    warmup_start: float = 0.1
    interval: Literal["step", "epoch"] = "step"
    step_size: int = 30
    milestones: list[int] = field(default_factory=lambda: [30, 60, 90])
    gamma: float = 0.1
    min_lr: float = 0.0


def scaled_lr(cfg: OptimizerConfig, global_batch: int) -> float:
    """The learning rate for ``global_batch`` samples per optimizer step under ``cfg.scale_lr``."""
    ratio = global_batch / cfg.reference_batch
    return cfg.lr * {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[cfg.scale_lr]


def param_groups(named: list[tuple[str, nn.Parameter]], cfg: OptimizerConfig, lr_scale: float = 1.0) -> list[dict]:
    """Split parameters into decayed and non-decayed groups (1-D tensors are norms and biases)."""
    decay = [p for n, p in named if not (cfg.no_decay_norm_bias and p.ndim <= 1)]
    no_decay = [p for n, p in named if cfg.no_decay_norm_bias and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay, "lr": cfg.lr * lr_scale}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "lr": cfg.lr * lr_scale})
    return [g for g in groups if g["params"]]


def optimizer_classes() -> dict[str, type[torch.optim.Optimizer]]:
    """torch.optim's optimizers by lower-case name: {"sgd": SGD, "adagrad": Adagrad, ...}."""
    return {name.lower(): cls for name, cls in vars(torch.optim).items()
            if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer}


def _optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    from ..language.values import close_matches

    known = optimizer_classes()
    if name.lower() in known:
        return known[name.lower()]
    if "." not in name:
        near = close_matches(name.lower(), known)
        near = near if near.startswith(" (") else ""
        raise ArchError(f"model.optimizer.name: unknown optimizer '{name}'{near}; known: "
                        f"{', '.join(sorted(known))}, or a class path such as torch.optim.SGD")
    module, _, attr = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ArchError(f"model.optimizer.name: cannot import '{name}' ({err}); known short names: "
                        f"{', '.join(sorted(known))}") from None
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ArchError(f"model.optimizer.name: '{name}' is not a torch.optim.Optimizer subclass")
    return cls


def resolve_optimizer(cfg: OptimizerConfig) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    """The optimizer class that ``cfg.name`` names and its keyword arguments (without params and lr).

    The shared settings go to the optimizers whose constructor has them (momentum to SGD and
    RMSprop, betas to the Adam family); ``cfg.args`` must name arguments the constructor has.
    Raises ArchError, listing what is known, for an unknown name or argument.
    """
    cls = _optimizer_class(cfg.name)
    signature = inspect.signature(cls)
    params = [p for p in signature.parameters if p not in ("self", "params")]
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    fixed = {"lr", "weight_decay"}  # set per parameter group (no-decay groups, pretrained_lr_scale)
    for key in cfg.args:
        if key in fixed:
            raise ArchError(f"model.optimizer.args: set '{key}' as --model.optimizer.{key}, not in args")
        if key not in params and not open_ended:
            raise ArchError(f"model.optimizer.args: {cls.__name__} has no argument '{key}'; "
                            f"its arguments: {', '.join(p for p in params if p not in fixed)}")
    if cfg.weight_decay and "weight_decay" not in params and not open_ended:
        raise ArchError(f"model.optimizer.weight_decay: {cls.__name__} has no weight decay; "
                        "set --model.optimizer.weight_decay 0")
    kwargs: dict[str, Any] = {}
    if "momentum" in params:
        kwargs["momentum"] = cfg.momentum
    if "nesterov" in params:  # SGD refuses Nesterov without momentum
        kwargs["nesterov"] = cfg.nesterov and cfg.momentum > 0
    if "betas" in params:
        kwargs["betas"] = tuple(cfg.betas)
    kwargs.update(cfg.args)
    return cls, kwargs


def build_optimizer(groups: list[dict], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    cls, kwargs = resolve_optimizer(cfg)
    try:
        return cls(groups, lr=cfg.lr, **kwargs)
    except (TypeError, ValueError) as err:  # the optimizer's own checks, e.g. a negative eps
        raise ArchError(f"model.optimizer: {cls.__name__}: {err}") from None


def check_optimizer(cfg: OptimizerConfig) -> None:
    """Raise ArchError now, before any training, if ``cfg`` cannot build its optimizer."""
    build_optimizer([{"params": [nn.Parameter(torch.zeros(1, 1))]}], cfg)


def lr_factor(cfg: SchedulerConfig, t: int, total: int) -> float:
    """Multiplier of the base learning rate at time ``t`` (steps or epochs) of ``total``."""
    if t < cfg.warmup:
        return cfg.warmup_start + (1 - cfg.warmup_start) * t / max(cfg.warmup, 1)
    if cfg.name == "step":
        return cfg.gamma ** (t // cfg.step_size)
    if cfg.name == "multistep":
        return cfg.gamma ** sum(t >= m for m in cfg.milestones)
    if cfg.name == "cosine":
        progress = min(1.0, (t - cfg.warmup) / max(total - cfg.warmup, 1))
        return cfg.min_lr + (1 - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
    if cfg.name == "onecycle":  # linear up over the first 30% then cosine down (Smith, 2018)
        peak = max(int(0.3 * total), 1)
        if t < peak:
            return 0.04 + 0.96 * t / peak
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (t - peak) / max(total - peak, 1)))) + 1e-4
    return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: SchedulerConfig, total: int) -> dict | None:
    if cfg.name == "none" and cfg.warmup == 0:
        return None
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: lr_factor(cfg, t, total))
    return {"scheduler": scheduler, "interval": cfg.interval, "frequency": 1}
