"""Evaluation of one net or an ensemble of checkpoints, with test-time crops and exact metrics.

``Evaluator`` is what validate/test/predict do with a batch: cut the crops (when the batch holds
whole images), run every member on them, average, and update metrics held as torchmetrics state.
Metric states are summed across processes once per epoch, never per step, so DDP processes that
see different numbers of batches (no sample is padded or dropped) never wait on each other.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, NamedTuple, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from ..errors import ArchError
from .crops import MODES, crop_boxes, loader_side, make_crops
from .windows import make_windows


@dataclass
class EvalConfig:
    """Test-time evaluation, used by validate, test and predict (fit's per-epoch validation always uses
    the datamodule's plain eval transforms).

    Args:
        crops: center (the datamodule's eval transforms), flip (centre + mirror), ten (4 corners +
            centre, and mirrors) or googlenet144 (4 scales x 3 squares x 6 crops x 2 mirrors); for 1-D
            signals center (the centre window) or windows (``windows`` evenly spaced windows).
        scales: shorter sides to evaluate at, relative to a 224 input (e.g. [256, 320] = 256/224 and
            320/224 x the input side); each scale gets the mode's crops. Default: the mode's own
            ([256]; googlenet144: [256, 288, 320, 352]).
        mirror: add the left-right mirror of every crop; default: the mode's own (false for center).
        average: average class probabilities (prob, as GoogLeNet) or logits (logit) over crops and members.
        windows: with ``crops: windows`` (1-D signals), windows per signal, evenly spaced from its
            start to its end.
        max_crops: crops per forward pass (bounds memory; an image's crops are never split).
        top_k: labels per row in predict's CSV.
        report_dir: where test/validate reports and predict's CSV go (default: trainer.default_root_dir/reports).
    """

    crops: Literal["center", "flip", "ten", "googlenet144", "windows"] = "center"
    scales: list[int] | None = None
    mirror: bool | None = None
    average: Literal["prob", "logit"] = "prob"
    windows: int = 10
    max_crops: int = 256
    top_k: int = 5
    report_dir: str | None = None

    def on_tensors(self) -> bool:
        """Whether crops are cut on the device from whole images (anything but the plain centre crop)."""
        return self.crops != "center" or bool(self.scales) or bool(self.mirror)


@dataclass
class EnsembleConfig:
    """An ensemble of trained checkpoints, evaluated together (validate, test, predict).

    Args:
        checkpoints: Lightning checkpoints of this pipeline; architectures may differ, classes must not.
        weights: one weight per checkpoint for the average (normalised to sum to one); default: equal.
    """

    checkpoints: list[str] = field(default_factory=list)
    weights: list[float] | None = None


class Member(NamedTuple):
    """One net of an evaluation: called on normalised (N, C, size, size) batches, returns logits."""

    forward: Callable[[torch.Tensor], torch.Tensor]
    size: int
    weight: float = 1.0


def combine(logits: Sequence[torch.Tensor], weights: Sequence[float] | None = None, average: str = "prob"
            ) -> torch.Tensor:
    """Log of the averaged class probabilities, (N, classes), from each member's (N, crops, classes) logits.

    prob: p = sum_m w_m * mean_k softmax(z_mk); logit: p = softmax(sum_m w_m * mean_k z_mk); the
    weights are normalised to sum to one. Computed in log space (logsumexp), so nothing underflows.
    """
    w = torch.tensor(list(weights) if weights is not None else [1.0] * len(logits), dtype=torch.float32,
                     device=logits[0].device)
    w = w / w.sum()
    if average == "logit":
        return sum(wm * z.float().mean(1) for wm, z in zip(w, logits)).log_softmax(1)
    per_member = torch.stack([z.float().log_softmax(2).logsumexp(1) - math.log(z.shape[1]) for z in logits])
    return torch.logsumexp(per_member + w.log()[:, None, None], dim=0)


class Evaluator(nn.Module):
    """Crops, forward passes, averaging and metrics of validation/test/predict steps.

    Its metrics are non-persistent torchmetrics states: checkpoints do not change.
    """

    def __init__(self, num_classes: int, config: EvalConfig | None = None):
        super().__init__()
        self.num_classes, self.config = num_classes, config or EvalConfig()
        metrics: dict[str, nn.Module] = {}
        for split in ("val", "test"):
            metrics[f"{split}_loss"] = MeanMetric()
            for name, k in (("acc", 1), ("acc5", 5)):
                if k <= num_classes:
                    metrics[f"{split}_{name}"] = MulticlassAccuracy(num_classes, top_k=k, average="micro")
            metrics[f"{split}_confusion"] = MulticlassConfusionMatrix(num_classes)
        self.metrics = nn.ModuleDict(metrics)

    def crops_per_image(self, size: int) -> int:
        """How many crops each image gets (for reports); 1 when batches arrive already cropped."""
        cfg = self.config
        if not cfg.on_tensors():
            return 1
        if cfg.crops == "windows":
            return cfg.windows
        side = loader_side(cfg.crops, size, cfg.scales)
        return len(crop_boxes(cfg.crops, side, side, size, cfg.scales, cfg.mirror))

    def _crop_logits(self, member: Member, images: Sequence[torch.Tensor]) -> torch.Tensor:
        cfg = self.config
        boxes: dict[tuple[int, int], list] = {}  # images of one size share their geometry
        pending: list[torch.Tensor] = []
        outputs: list[torch.Tensor] = []
        for image in images:
            if image.dim() == 2:  # a whole 1-D signal (C, L): its windows (the centre one unless 'windows')
                pending.append(make_windows(image, cfg.windows if cfg.crops == "windows" else 1, member.size))
                if sum(len(p) for p in pending) >= cfg.max_crops:
                    outputs.append(member.forward(torch.cat(pending)))
                    pending = []
                continue
            shape = tuple(image.shape[-2:])
            if shape not in boxes:
                boxes[shape] = crop_boxes(cfg.crops, *shape, member.size, cfg.scales, cfg.mirror)
            pending.append(make_crops(image, boxes[shape], member.size))
            if sum(len(p) for p in pending) >= cfg.max_crops:
                outputs.append(member.forward(torch.cat(pending)))
                pending = []
        if pending:
            outputs.append(member.forward(torch.cat(pending)))
        return torch.cat(outputs).view(len(images), -1, outputs[0].shape[-1])  # (N, crops, classes)

    def log_probs(self, members: Sequence[Member], images: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        """(N, classes) log of the averaged probabilities. A tensor batch is used as it is; a list of
        whole images (multi-crop loaders) is cut into each member's crops."""
        if isinstance(images, torch.Tensor):
            logits = [m.forward(images)[:, None] for m in members]
        else:
            logits = [self._crop_logits(m, images) for m in members]
        return combine(logits, [m.weight for m in members], self.config.average)

    def step(self, module: L.LightningModule, members: Sequence[Member], batch, split: str) -> None:
        images, target = batch[0], batch[1]
        if len(target) == 0:  # every file of the batch was bad and skipped
            return
        log_probs = self.log_probs(members, images)
        loss = self.metrics[f"{split}_loss"]
        loss.update(F.nll_loss(log_probs, target, reduction="none"))
        module.log(f"{split}/loss", loss, prog_bar=split == "val")
        for name in ("acc", "acc5"):
            if f"{split}_{name}" in self.metrics:
                metric = self.metrics[f"{split}_{name}"]
                metric.update(log_probs, target)
                module.log(f"{split}/{name}", metric, prog_bar=name == "acc")
        self.metrics[f"{split}_confusion"].update(log_probs.argmax(1), target)

    def probs(self, members: Sequence[Member], batch) -> torch.Tensor:
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self.log_probs(members, images).exp()


# -- checkpoints ------------------------------------------------------------------------------------
def class_names_in(checkpoint: dict) -> list[str] | None:
    """The class names a datamodule stored in a checkpoint (under its class name), if any."""
    for value in checkpoint.values():
        if isinstance(value, dict) and isinstance(value.get("class_names"), list) and value["class_names"]:
            return [str(n) for n in value["class_names"]]
    return None


def read_checkpoint(path: str | Path) -> dict:
    from ..training.cli import allow_checkpoint_globals

    path = Path(path)
    if not path.is_file():
        raise ArchError(f"checkpoint not found: {path}")
    allow_checkpoint_globals()
    try:
        return torch.load(path, map_location="cpu", weights_only=True)  # untrusted input: no code
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ArchError(f"{path}: not a readable checkpoint ({reason})") from None


def load_member(path: str | Path):
    """A ClassifierModule rebuilt from a checkpoint's hyper-parameters and weights (EMA weights
    included: in eval mode it evaluates as it did in training), and its stored class names."""
    from ..training.module import ClassifierModule

    checkpoint = read_checkpoint(path)
    hparams, state = checkpoint.get("hyper_parameters"), checkpoint.get("state_dict")
    if not isinstance(hparams, dict) or "arch" not in hparams or not isinstance(state, dict):
        raise ArchError(f"{path}: not a checkpoint of this pipeline (no model hyper-parameters or state_dict)")
    accepted = inspect.signature(ClassifierModule.__init__).parameters
    # a file to initialise from or a node to freeze mean nothing once trained; compiling would only slow a test
    args = {k: v for k, v in hparams.items() if k in accepted} | {"init_from": None, "freeze_until": None,
                                                                  "compile": False}
    try:
        module = ClassifierModule(**args)
        module.load_state_dict(state)
    except ArchError as err:
        raise ArchError(f"{path}: {err}") from None
    except RuntimeError as err:
        raise ArchError(f"{path}: weights do not fit {hparams['arch']}: {str(err).splitlines()[0]}") from None
    return module, class_names_in(checkpoint)


class EnsembleModule(L.LightningModule):
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
        return [Member(net, net.net.input_shape[-1], w) for net, w in zip(self.nets, self.weights)]

    def validation_step(self, batch, batch_idx: int) -> None:
        self.evaluator.step(self, self.eval_members(), batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self.evaluator.step(self, self.eval_members(), batch, "test")

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self.evaluator.probs(self.eval_members(), batch)


def _input_shape(member: Member) -> tuple[int, ...]:
    net = getattr(member.forward, "net", None)
    return tuple(getattr(net, "input_shape", ())) or (0, 0, 0)


def prepare(module: L.LightningModule, datamodule, config: EvalConfig, ensemble: EnsembleConfig | None = None,
            ckpt_path: str | None = None, check_classes: bool = True) -> L.LightningModule:
    """The module that validate/test/predict run (``module``, or an EnsembleModule of
    ``ensemble.checkpoints``), with ``config`` set on it, and the datamodule told what to load:
    for crops cut on tensors, whole images resized to the largest scale any member needs."""
    if config.max_crops < 1 or config.top_k < 1:
        raise ArchError(f"eval.max_crops and eval.top_k must be positive, got {config.max_crops} and {config.top_k}")
    if ensemble is not None and ensemble.checkpoints:
        if ckpt_path:
            raise ArchError("give the checkpoints either as --ckpt_path or as --ensemble.checkpoints, not both")
        module = EnsembleModule(ensemble.checkpoints, ensemble.weights, config)
        if check_classes and datamodule is not None and module.num_classes != datamodule.num_classes:
            raise ArchError(f"ensemble.checkpoints: the checkpoints have {module.num_classes} classes, "
                            f"the data has {datamodule.num_classes}")
    module.evaluator.config = config
    members = module.eval_members()
    data_shape = tuple(datamodule.input_shape) if datamodule is not None else None
    on_tensors = config.on_tensors() or any(data_shape and m.size != data_shape[-1] for m in members)
    signals = [m for m in members if len(_input_shape(m)) == 2]
    if signals:  # 1-D nets: whole signals from the loader, cut into windows (windows.py)
        if len(signals) != len(members):
            raise ArchError("ensemble.checkpoints: 1-D and image models cannot be evaluated together")
        if config.crops not in ("center", "windows") or config.scales or config.mirror:
            raise ArchError(f"eval.crops: 1-D signals take 'center' or 'windows' (no scales or mirrors), "
                            f"got '{config.crops}'")
        if config.windows < 1:
            raise ArchError(f"eval.windows must be positive, got {config.windows}")
        if datamodule is not None:
            datamodule.eval_resize = max(m.size for m in members) if on_tensors else None
        return module
    if config.crops == "windows":
        raise ArchError("eval.crops: 'windows' is for 1-D signals; images take center, flip, ten or googlenet144")
    if on_tensors:
        for m in members:
            shape = m.forward.net.input_shape if hasattr(m.forward, "net") else None
            if shape is not None and (len(shape) != 3 or shape[1] != shape[2]):
                raise ArchError(f"eval.crops: crops need a square image input, the model's is "
                                f"{'x'.join(map(str, shape))}")
        try:
            side = max(loader_side(config.crops, m.size, config.scales) for m in members)
            for m in members:
                crop_boxes(config.crops, side, side, m.size, config.scales, config.mirror)  # checks the scales
        except ValueError as err:
            raise ArchError(f"eval.scales: {err}") from None
    if datamodule is not None:
        datamodule.eval_resize = side if on_tensors else None
    return module


__all__ = ["EnsembleConfig", "EnsembleModule", "EvalConfig", "Evaluator", "MODES", "Member", "class_names_in",
           "combine", "load_member", "prepare", "read_checkpoint"]
