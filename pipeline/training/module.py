"""The LightningModule: a YAML-declared net, its losses (auxiliary heads included), metrics and optimizers."""
from __future__ import annotations

import inspect
import logging
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints import read_state_dict
from ..errors import ArchError, close_matches
from ..evaluation import EvalConfig, EvaluationSteps, Evaluator, Member
from ..language import TrainOutput, materialize, plan_model
from .fault import TrainingDiverged, last_finite_message, refuse_nonfinite
from .optim import (OptimizerConfig, SchedulerConfig, build_optimizer, build_scheduler, check_optimizer, param_groups,
                    scaled_lr)
from .preflight import check_same_net

log = logging.getLogger(__name__)


def logs_this_step(trainer: L.Trainer) -> bool:
    """Whether a training step's logged values reach anyone: the loggers take them every log_every_n_steps
    (Lightning's own test, which its monitors use too), a progress bar every step. The same answer on every
    rank (a configured bar, not rank zero's enabled one): the losses are logged with sync_dist, a collective
    that all ranks must join."""
    return trainer.progress_bar_callback is not None or trainer._logger_connector.should_update_logs


def reads_every_step(device: torch.device) -> bool:
    """Whether the loss checks read every step's loss at once: on a CPU the value is already there."""
    return device.type == "cpu"


def classification_loss(output: torch.Tensor | TrainOutput, target: torch.Tensor, label_smoothing: float = 0.0
                        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Main loss + sum(weight * auxiliary loss); also returns each part for logging.

    ``target`` holds class indices, or class probabilities (N, classes) after Mixup/CutMix.
    """
    if isinstance(output, TrainOutput):
        main = F.cross_entropy(output.logits, target, label_smoothing=label_smoothing)
        parts = {"main": main}
        total = main
        for name, aux in output.aux.items():
            parts[name] = F.cross_entropy(aux.logits, target, label_smoothing=label_smoothing)
            total = total + aux.weight * parts[name]
        return total, parts
    main = F.cross_entropy(output, target, label_smoothing=label_smoothing)
    return main, {"main": main}


def load_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a Lightning checkpoint (the net's part) or a plain state-dict file; safe unpickling."""
    try:
        return read_state_dict(path, "weights file", prefix="net.")
    except ArchError as err:
        raise ArchError(f"init_from: {err}") from None


class ClassifierModule(EvaluationSteps, L.LightningModule):
    """Trains an image classifier declared in an architecture YAML file.

    Args:
        arch: architecture file (e.g. ``architectures/resnet18.yaml``).
        num_classes: number of classes; sets the file's ``classes`` variable (linked from the data).
        vars: other variables of the file to override, e.g. ``{k: 10, depth: 28}``.
        input_shape: input (C, H, W); linked from the data; default: the file's ``input``.
        optimizer: optimizer settings.
        scheduler: learning-rate schedule settings.
        label_smoothing: label smoothing of the cross-entropy (main and auxiliary heads).
        ema_decay: keep an exponential moving average of the weights (timm's ModelEmaV3) with this
            decay, e.g. 0.999, and evaluate with it; 0 = off.
        init_from: initialise from a Lightning checkpoint or a state dict (e.g. from
            ``import-weights``); tensors whose shape differs (a classifier for other classes) are
            left at their initialisation.
        init_prefix: prefix added to the keys of ``init_from`` (e.g. ``backbone.net.`` to load timm
            weights into a ``timm`` node).
        freeze_until: freeze every node up to and including this one (transfer learning).
        pretrained_lr_scale: learning-rate multiplier of the weights loaded by ``init_from``.
        channels_last: keep 4-D weights and image batches in channels-last (NHWC) memory format;
            faster for CNNs on GPUs with mixed precision and on CPUs with oneDNN (see
            ``docs/BENCHMARKS.md``); numerics are unchanged.
        compile: run the net through ``torch.compile(fullgraph=True)``; the first steps of each mode
            (train, eval) are slow while it compiles; checkpoints are unchanged.
        evaluation: test-time crops and averaging of validate/test/predict (linked from ``--eval``;
            not a hyper-parameter: checkpoints do not change).
        aux_weights: loss weights of auxiliary heads, overriding the file's, e.g. ``{aux1: 0.0, aux2: 0.1}``;
            a head of weight 0 is not computed in training (its weights stay in checkpoints).
    """

    # what reports show for a single net: the data's class names, the checkpoint it was loaded from
    class_names: list[str] | None = None
    checkpoints: tuple[str, ...] = ()

    def __init__(self, arch: str, num_classes: int | None = None, vars: dict[str, Any] | None = None,
                 input_shape: tuple[int, ...] | None = None, optimizer: OptimizerConfig = OptimizerConfig(),
                 scheduler: SchedulerConfig = SchedulerConfig(), label_smoothing: float = 0.0, ema_decay: float = 0.0,
                 init_from: str | None = None, init_prefix: str = "", freeze_until: str | None = None,
                 pretrained_lr_scale: float = 1.0, channels_last: bool = False, compile: bool = False,
                 evaluation: EvalConfig | None = None, aux_weights: dict[str, float] | None = None):
        super().__init__()
        opt_cfg = OptimizerConfig(**optimizer) if isinstance(optimizer, dict) else optimizer  # a dict: reloaded
        sched_cfg = SchedulerConfig(**scheduler) if isinstance(scheduler, dict) else scheduler
        if not getattr(opt_cfg, "lr", 0) >= 0:  # NaN fails too
            raise ArchError(f"model.optimizer.lr: expected a learning rate >= 0, got {opt_cfg.lr}")
        check_optimizer(opt_cfg)  # a wrong name or argument fails here, before the net or the data exist
        # the arguments, recorded as hyper-parameters below, made plain values so that checkpoints load with
        # weights_only=True; `vars`, `compile` (config keys model.vars, model.compile) shadow builtins: renamed here
        arch, arch_vars, compile_net, aux_weights = str(arch), dict(vars or {}), compile, dict(aux_weights or {})
        input_shape = list(input_shape) if input_shape else None
        optimizer, scheduler = asdict(opt_cfg), asdict(sched_cfg)
        # given explicitly: under LightningCLI, save_hyperparameters() would record the raw command-line config
        # instead; `evaluation` (how to evaluate) is not what was trained
        given = locals() | {"vars": arch_vars, "compile": compile_net}
        self.save_hyperparameters({name: given[name] for name in inspect.signature(ClassifierModule).parameters
                                   if name != "evaluation"})
        self.opt_cfg, self.sched_cfg, self.label_smoothing = opt_cfg, sched_cfg, label_smoothing
        self.plan = self._plan(num_classes, compile_net)
        self.net = self._build(aux_weights)
        self.pretrained: set[str] = self._init_from(init_from, init_prefix) if init_from else set()
        self.frozen = self._freeze(freeze_until) if freeze_until else []
        self.ema = self._average(ema_decay)
        self.channels_last = channels_last
        self._set_layout(channels_last)
        if compile_net:
            # in place (nn.Module.compile): parameter names, hence checkpoints, stay those of the file
            self.net.compile(fullgraph=True)
        self._pending_losses: list[tuple[int, int, torch.Tensor]] = []  # (step, epoch, loss) not yet read
        self._epoch_correct: torch.Tensor | None = None  # this epoch's correct training predictions, on the device
        self._epoch_seen = 0
        # validation/test/predict steps (crops, ensembles, metrics): pipeline/evaluation
        self.evaluator = Evaluator(self.num_classes, evaluation)

    # -- construction, step by step -------------------------------------------------------------
    def _plan(self, num_classes: int | None, compile_net: bool):
        """The net's plan: every node's shape, parameters and MACs, checked before anything is allocated
        (the CLI's memory check reads it)."""
        hp = self.hparams
        overrides = dict(hp.vars) | ({"classes": num_classes} if num_classes is not None else {})
        plan = plan_model(hp.arch, tuple(hp.input_shape) if hp.input_shape else None, **overrides)
        self.num_classes = int(plan.out_shape[0])
        if self.num_classes < 2:
            raise ArchError(f"{hp.arch}: the net has {self.num_classes} output(s); a classifier needs at least 2 "
                            "classes (model.num_classes, or the file's 'classes' variable)")
        self.macs_per_sample = plan.macs  # aux heads included: they train; read by training.throughput
        # Lightning's model summary runs one sample through the net for in/out sizes and FLOPs; made on access
        # (see example_input_array) so a run the memory check refuses never allocates it. Not with compile: a
        # compiled net would compile for eval mode first.
        self._example_shape = None if compile_net else tuple(plan.in_shape)
        return plan

    def _build(self, aux_weights: dict[str, float]) -> nn.Module:
        net = materialize(self.plan)
        try:
            net.set_aux_weights(aux_weights)
        except ValueError as err:
            raise ArchError(f"model.aux_weights: {err} (in {self.hparams.arch})") from None
        return net

    def _average(self, decay: float):
        """timm's exponential moving average of the weights (evaluated instead of them), or None."""
        if decay <= 0:
            return None
        from timm.utils import ModelEmaV3

        return ModelEmaV3(self.net, decay=decay)

    def _set_layout(self, channels_last: bool) -> None:
        if channels_last:  # only 4-D tensors change; a 1-D net (WaveNet) is left as it is
            self.net.to(memory_format=torch.channels_last)
            if self.ema is not None:
                self.ema.module.to(memory_format=torch.channels_last)

    @property
    def example_input_array(self) -> torch.Tensor | None:
        """A zero sample of the planned shape, made when Lightning asks (after the memory check), <= 2**24 values."""
        shape = getattr(self, "_example_shape", None)
        if shape is None or math.prod(shape) > 2**24:
            return self._example_input_array
        return torch.zeros(1, *shape)

    @example_input_array.setter
    def example_input_array(self, example: torch.Tensor | None) -> None:
        self._example_shape = None  # an example set by hand (a subclass, a test) wins
        self._example_input_array = example

    # -- transfer learning ----------------------------------------------------------------------
    def _init_from(self, path: str, prefix: str) -> set[str]:
        state = {prefix + k: v for k, v in load_weights_file(path).items()}
        own = self.net.state_dict()
        fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        skipped = sorted(k for k in own if k not in fits)
        if not fits:
            raise ArchError(f"init_from: no tensor of {path} fits {self.hparams.arch} (wrong file or init_prefix?)")
        self.net.load_state_dict(fits, strict=False)
        if skipped:
            log.warning("init_from %s: %d tensors kept their initialisation (e.g. a new classifier): %s",
                        path, len(skipped), ", ".join(skipped[:6]) + (" ..." if len(skipped) > 6 else ""))
        return set(fits)

    def _freeze(self, until: str) -> list[nn.Module]:
        names = self.net.node_names()
        if until not in names:
            raise ArchError(f"freeze_until: no node '{until}' in {self.hparams.arch}{close_matches(until, names)}")
        chosen = names[: names.index(until) + 1]
        self.net.freeze_nodes(chosen)
        return [getattr(self.net, n) for n in chosen]

    def on_train_epoch_start(self) -> None:
        for module in self.frozen:  # frozen batch-norm keeps its (pretrained) statistics
            module.eval()
        self._epoch_correct, self._epoch_seen = None, 0

    # -- steps ----------------------------------------------------------------------------------
    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.ema.module if self.ema is not None and not self.training else self.net
        return net(self._layout(x))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, target = batch
        output = self.net(self._layout(images))
        loss, parts = classification_loss(output, target, self.label_smoothing)
        self._watch_loss(loss)
        # Each self.log costs about half a millisecond of Python (Lightning moves its result object to the
        # value's device every call); the loggers only take a step's values every log_every_n_steps, so the
        # losses are logged then, or every step when a progress bar shows them.
        if logs_this_step(self.trainer):
            # sync_dist: under DDP the logged loss is the mean over the global batch, not rank zero's share
            self.log("train/loss", loss, prog_bar=True, sync_dist=True)
            self.log_dict({f"train/loss_{name}": value for name, value in parts.items()}, sync_dist=True)
        # training accuracy per epoch (of the main head; Mixup's soft targets count by their top class): the
        # training-error curves of the papers' comparisons (pipeline/sweep/experiment.py); counted on the device
        # (no host sync), logged at the epoch's end
        logits = output.logits if isinstance(output, TrainOutput) else output
        hard = target if target.dim() == 1 else target.argmax(1)
        correct = (logits.argmax(1) == hard).sum()
        self._epoch_correct = correct if self._epoch_correct is None else self._epoch_correct + correct
        self._epoch_seen += hard.numel()
        return loss

    GROWTH = 100.0  # a loss this many times the first step's is diverging, though still finite

    def _watch_loss(self, loss: torch.Tensor) -> None:
        """The loss checks (not finite: stop; grown a hundredfold: warn once), read on the host in batches:
        every step on a CPU, where reading costs nothing; on an accelerator at Lightning's logging interval,
        when it reads the loss anyway (a host sync per step stalls a GPU that runs a small net), at the end
        of each epoch and before any checkpoint is written. The step named is the one that failed."""
        self._pending_losses.append((self.global_step, self.current_epoch, loss.detach()))
        if reads_every_step(loss.device) or len(self._pending_losses) >= max(1, self.trainer.log_every_n_steps):
            self._check_losses()

    def _check_losses(self) -> None:
        pending = self._pending_losses
        if not pending:
            return
        values = torch.stack([loss.float() for _, _, loss in pending]).tolist()  # the one host sync
        steps = [(step, epoch) for step, epoch, _ in pending]
        pending.clear()
        for (step, epoch), value in zip(steps, values):
            if not math.isfinite(value):
                raise TrainingDiverged(f"loss is {value} at step {step} (epoch {epoch}); "
                                       f"{last_finite_message(self.trainer)}")
            self._watch_growth(value, step)

    def _watch_growth(self, value: float, step: int) -> None:
        """Warn once when the loss grows by orders of magnitude over the first step's (before any update:
        about ln(classes)); Adam at lr 1e6 trains to a finite 3.5e9 without a word otherwise."""
        first = getattr(self, "_first_loss", None)
        if first is None:
            self._first_loss = value
        # against at least a chance-level loss, ln(classes): a resumed run's first loss is already small
        elif value > self.GROWTH * max(first, math.log(self.num_classes)) and not getattr(self, "_warned", False):
            self._warned = True
            lr = self.trainer.optimizers[0].param_groups[0]["lr"] if self.trainer.optimizers else float("nan")
            rank_zero_warn(f"the training loss grew from {first:.3g} (first step) to {value:.3g} at step "
                           f"{step}: the learning rate ({lr:.3g}) is probably too high; the run goes on")

    def on_train_epoch_end(self) -> None:
        self._check_losses()
        if self._epoch_seen:  # before ModelCheckpoint and EarlyStopping, which Lightning calls after this hook
            self.log("train/acc", self._epoch_correct.float() / self._epoch_seen, on_step=False, on_epoch=True,
                     sync_dist=True)

    def on_train_end(self) -> None:
        self._check_losses()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        check_same_net(checkpoint, self.net, self.hparams.arch)  # one line, not Lightning's size-mismatch dump

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._check_losses()  # a loss not yet read names the step where training failed
        refuse_nonfinite(checkpoint, self.trainer)  # a checkpoint to resume from must be finite

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        # here rather than in on_train_batch_end, which runs after the callbacks' (ModelCheckpoint):
        # a checkpoint written at the end of a batch must hold the average that includes that batch
        if self.ema is not None:
            self.ema.update(self.net, step=self.global_step + 1)  # the step counter moves after this hook

    def eval_members(self, weight: float = 1.0) -> list[Member]:
        shape = tuple(self.net.input_shape)
        return [Member(self, shape[-1], weight, shape)]

    # -- optimisation ---------------------------------------------------------------------------
    def scaled_optimizer_config(self) -> OptimizerConfig:
        """``optimizer.scale_lr``: the learning rate for this run's global batch (per-device batch x
        devices x nodes x gradient accumulation)."""
        cfg = self.opt_cfg
        if cfg.scale_lr == "none":
            return cfg
        batch = getattr(self.trainer.datamodule, "batch_size", None)
        if not isinstance(batch, int):
            raise ValueError("optimizer.scale_lr needs a datamodule with a batch_size")
        global_batch = batch * self.trainer.world_size * self.trainer.accumulate_grad_batches
        lr = scaled_lr(cfg, global_batch)
        rank_zero_info(f"learning rate {lr:g}: {cfg.lr:g} for a batch of {cfg.reference_batch}, scaled "
                       f"({cfg.scale_lr}) to the global batch {global_batch} = {batch} x {self.trainer.world_size} "
                       f"device(s) x {self.trainer.accumulate_grad_batches} accumulated")
        return replace(cfg, lr=lr)

    def configure_optimizers(self):
        cfg = self.scaled_optimizer_config()
        switched_off = self.net.switched_off_parameters()
        # a switched-off head's weights too (no gradient: the optimizer skips them), so that the
        # optimizer's groups, hence checkpoints, do not depend on the heads' weights
        named = [(n, p) for n, p in self.net.named_parameters() if p.requires_grad or n in switched_off]
        scale = self.hparams.pretrained_lr_scale
        if self.pretrained and scale != 1.0:
            groups = param_groups([(n, p) for n, p in named if n in self.pretrained], cfg, scale) + \
                param_groups([(n, p) for n, p in named if n not in self.pretrained], cfg)
        else:
            groups = param_groups(named, cfg)
        optimizer = build_optimizer(groups, cfg)
        total = self.trainer.estimated_stepping_batches if self.sched_cfg.interval == "step" \
            else max(self.trainer.max_epochs or 1, 1)
        scheduler = build_scheduler(optimizer, self.sched_cfg, int(total))
        return optimizer if scheduler is None else {"optimizer": optimizer, "lr_scheduler": scheduler}
