"""Evaluation of one net or several, with test-time crops and exact metrics.

``Evaluator`` is what validate/test/predict do with a batch: cut the crops (when the batch holds
whole images), run every member on them, average, and update metrics held as torchmetrics state.
Metric states are summed across processes once per epoch, never per step, so DDP processes that
see different numbers of batches (no sample is padded or dropped) never wait on each other.
``EvaluationData`` states what a datamodule offers evaluation; ``whole_image_side`` works out
what it must load for a configuration.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, NamedTuple, Protocol, Sequence, Union, runtime_checkable

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from ..errors import ArchError
from .crops import CropMode, crop_boxes, loader_side, make_crops
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

    crops: Union[CropMode, Literal["windows"]] = "center"  # image modes (crops.py), or 1-D windows
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


@runtime_checkable
class EvaluationData(Protocol):
    """What validate/test/predict use of a datamodule (``datamodules.ClassificationDataModule`` offers all of it)."""

    num_classes: int
    input_shape: tuple[int, ...]
    class_names: list[str]  # the labels of reports and predict's CSV when the checkpoint has none
    # set by evaluation: eval loaders then yield whole images (shorter side resized to it) as lists,
    # and the crops are cut on the device; None: batches through the datamodule's eval transforms
    eval_resize: int | None

    def predict_names(self) -> list[str]:
        """What predict's rows are called (file names), in the predict loader's index order."""


class Member(NamedTuple):
    """One net of an evaluation: called on normalised (N, C, size, size) batches, returns logits.
    ``input_shape`` is the net's declared input, when known (crops need a square one)."""

    forward: Callable[[torch.Tensor], torch.Tensor]
    size: int
    weight: float = 1.0
    input_shape: tuple[int, ...] | None = None


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


def whole_image_side(config: EvalConfig, members: Sequence[Member], data_shape: tuple[int, ...] | None
                     ) -> int | None:
    """The shorter side the data must load whole images at for ``config`` (the largest scale any member
    needs), or None when the datamodule's own eval transforms already give every member its input.
    Checks the configuration first: a mistake is a one-line ArchError."""
    if config.max_crops < 1 or config.top_k < 1:
        raise ArchError(f"eval.max_crops and eval.top_k must be positive, got {config.max_crops} and {config.top_k}")
    on_tensors = config.on_tensors() or any(data_shape and m.size != data_shape[-1] for m in members)
    signals = [m for m in members if m.input_shape is not None and len(m.input_shape) == 2]
    if signals:  # 1-D nets: whole signals from the loader, cut into windows (windows.py)
        if len(signals) != len(members):
            raise ArchError("ensemble.checkpoints: 1-D and image models cannot be evaluated together")
        if config.crops not in ("center", "windows") or config.scales or config.mirror:
            raise ArchError(f"eval.crops: 1-D signals take 'center' or 'windows' (no scales or mirrors), "
                            f"got '{config.crops}'")
        if config.windows < 1:
            raise ArchError(f"eval.windows must be positive, got {config.windows}")
        return max(m.size for m in members) if on_tensors else None
    if config.crops == "windows":
        raise ArchError("eval.crops: 'windows' is for 1-D signals; images take center, flip, ten or googlenet144")
    if not on_tensors:
        return None
    for m in members:
        shape = m.input_shape
        if shape is not None and (len(shape) != 3 or shape[1] != shape[2]):
            raise ArchError(f"eval.crops: crops need a square image input, the model's is {'x'.join(map(str, shape))}")
    try:
        side = max(loader_side(config.crops, m.size, config.scales) for m in members)
        for m in members:
            crop_boxes(config.crops, side, side, m.size, config.scales, config.mirror)  # checks the scales
    except ValueError as err:
        raise ArchError(f"eval.scales: {err}") from None
    return side


__all__ = ["EvalConfig", "EvaluationData", "Evaluator", "Member", "combine", "whole_image_side"]


class EvaluationSteps:
    """Lightning's validation/test/predict steps for a module with an ``evaluator`` and ``eval_members()``
    (the single net and the ensemble evaluate alike: through the evaluator, over their members)."""

    def validation_step(self, batch, batch_idx: int) -> None:
        self.evaluator.step(self, self.eval_members(), batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self.evaluator.step(self, self.eval_members(), batch, "test")

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self.evaluator.probs(self.eval_members(), batch)
