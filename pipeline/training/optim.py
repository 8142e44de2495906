"""Optimizer and learning-rate schedule settings, and the objects they build."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn


@dataclass
class OptimizerConfig:
    """The optimizer.

    Args:
        name: sgd (momentum; the default, as in the ResNet papers) or adamw.
        lr: base learning rate: for the global batch (per-device batch x devices x nodes x
            gradient accumulation), or, with ``scale_lr``, for a global batch of ``reference_batch``.
        momentum: SGD momentum.
        nesterov: Nesterov momentum for SGD.
        weight_decay: L2 penalty (decoupled for AdamW).
        no_decay_norm_bias: exempt norm weights and all biases from weight decay.
        betas: AdamW's betas.
        scale_lr: scale ``lr`` with the global batch: "linear" (Goyal et al., 2017: lr x global /
            reference_batch; pair it with a warm-up of a few epochs), "sqrt", or "none".
        reference_batch: the global batch that ``lr`` is meant for when ``scale_lr`` is set.
    """

    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    no_decay_norm_bias: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    scale_lr: Literal["none", "linear", "sqrt"] = "none"
    reference_batch: int = 256


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
    decay = [p for n, p in named if p.requires_grad and not (cfg.no_decay_norm_bias and p.ndim <= 1)]
    no_decay = [p for n, p in named if p.requires_grad and cfg.no_decay_norm_bias and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay, "lr": cfg.lr * lr_scale}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "lr": cfg.lr * lr_scale})
    return [g for g in groups if g["params"]]


def build_optimizer(groups: list[dict], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


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
