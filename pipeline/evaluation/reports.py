"""What validate/test and predict leave behind: a JSON report, the confusion matrix (CSV and PNG),
a table on stdout, and predict's CSV. Rank 0 writes, from metrics summed over every process."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback

from ..checkpoints import atomic_write, class_names_in, read_checkpoint
from .evaluator import EvaluationData

WORST_SHOWN = 10  # classes listed on stdout when there are too many for one screen


def per_class(confusion: torch.Tensor, names: list[str]) -> list[dict[str, Any]]:
    """Rows are true classes, columns predictions."""
    totals, correct = confusion.sum(1).tolist(), confusion.diagonal().tolist()
    return [{"class": name, "samples": int(t), "correct": int(c), "accuracy": (c / t) if t else None}
            for name, t, c in zip(names, totals, correct)]


def write_confusion_csv(confusion: torch.Tensor, names: list[str], path: Path) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["true \\ predicted", *names])
            for name, row in zip(names, confusion.tolist()):
                out.writerow([name, *row])

    atomic_write(path, write)


def write_confusion_png(confusion: torch.Tensor, names: list[str], path: Path) -> None:
    """A row-normalised heat map (white = 0, dark blue = the whole row) drawn with matplotlib; counts
    in the cells and class names on the axes while they can be read."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    n = len(names)
    rows = confusion.double()
    fractions = (rows / rows.sum(1, keepdim=True).clamp(min=1)).numpy()
    side = min(4 + 0.45 * n, 16)
    fig, ax = plt.subplots(figsize=(side + 1.5, side), constrained_layout=True)
    shown = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(shown, ax=ax, shrink=0.8, label="share of the true class")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("confusion matrix (row-normalised)")
    if n <= 40:
        ax.set_xticks(range(n), names, rotation=90)
        ax.set_yticks(range(n), names)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if confusion[i, j]:
                    ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center", fontsize=8,
                            color="white" if fractions[i, j] > 0.5 else "black")
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def table(report: dict[str, Any]) -> str:
    """The report as text: totals, then the classes (the worst ones when there are many)."""
    crops = report["crops"]
    used = ", ".join(report["checkpoints"]) or "the configured model's current weights"
    lines = [f"{report['stage']}: {report['samples']} samples, crops {crops['mode']} ({crops['per_image']} per image, "
             f"{crops['average']} average), {used}",
             f"  top-1  {report['top1']:.4f}  ({report['correct']}/{report['samples']})"]
    if report.get("top5") is not None:
        lines.append(f"  top-5  {report['top5']:.4f}")
    if report.get("loss") is not None:
        lines.append(f"  loss   {report['loss']:.4f}")
    classes = [c for c in report["per_class"] if c["samples"]]
    if len(classes) > 2 * WORST_SHOWN:
        classes = sorted(classes, key=lambda c: c["accuracy"])[:WORST_SHOWN]
        lines.append(f"  the {WORST_SHOWN} classes with the lowest accuracy:")
    width = max([len("class")] + [len(c["class"]) for c in classes])
    lines.append(f"  {'class':<{width}}  samples  correct  accuracy")
    lines += [f"  {c['class']:<{width}}  {c['samples']:>7}  {c['correct']:>7}  {c['accuracy']:>8.4f}" for c in classes]
    return "\n".join(lines)


def _data(trainer) -> EvaluationData | None:
    data = trainer.datamodule
    return data if isinstance(data, EvaluationData) else None


def _class_names(trainer, module, count: int) -> list[str]:
    data = _data(trainer)
    for names in (module.class_names, data.class_names if data is not None else None):
        if names and len(names) == count:
            return [str(n) for n in names]
    return [str(i) for i in range(count)]


def _used_checkpoints(trainer, module) -> list[str]:
    if module.checkpoints:  # an ensemble's
        return list(module.checkpoints)
    return [str(trainer.ckpt_path)] if trainer.ckpt_path else []


class EvaluationReport(Callback):
    """After ``validate``/``test``: ``<stage>.json`` (top-1, top-5, loss, per-class accuracy, crops,
    checkpoints), ``<stage>_confusion.csv`` and ``.png`` in ``directory``, and a table on stdout."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.confusion: torch.Tensor | None = None
        self.written: dict[str, Path] = {}

    def _start(self, trainer, module, split: str) -> None:
        if not trainer.sanity_checking:
            module.evaluator.metrics[f"{split}_confusion"].reset()

    def _end(self, trainer, module, split: str) -> None:
        if not trainer.sanity_checking:  # every rank: compute() sums the counts of all processes
            self.confusion = module.evaluator.metrics[f"{split}_confusion"].compute().long().cpu()

    def on_validation_epoch_start(self, trainer, module) -> None:
        self._start(trainer, module, "val")

    def on_test_epoch_start(self, trainer, module) -> None:
        self._start(trainer, module, "test")

    def on_validation_epoch_end(self, trainer, module) -> None:
        self._end(trainer, module, "val")

    def on_test_epoch_end(self, trainer, module) -> None:
        self._end(trainer, module, "test")

    def on_validation_end(self, trainer, module) -> None:
        if not trainer.sanity_checking:
            self.write(trainer, module, "val", "validate")

    def on_test_end(self, trainer, module) -> None:
        self.write(trainer, module, "test", "test")

    def write(self, trainer, module, split: str, stage: str) -> None:
        if self.confusion is None or not trainer.is_global_zero:
            return
        confusion, evaluator = self.confusion, module.evaluator
        names = _class_names(trainer, module, len(confusion))
        data = _data(trainer)
        logged = trainer.callback_metrics
        members = module.eval_members()
        cfg = evaluator.config
        samples, correct = int(confusion.sum()), int(confusion.diagonal().sum())
        report = {
            "stage": stage, "samples": samples, "correct": correct, "top1": correct / samples if samples else 0.0,
            "top5": float(logged[f"{split}/acc5"]) if f"{split}/acc5" in logged else None,
            "loss": float(logged[f"{split}/loss"]) if f"{split}/loss" in logged else None,
            "per_class": per_class(confusion, names),
            "crops": {"mode": cfg.crops, "per_image": evaluator.crops_per_image(members[0].size),
                      "scales": cfg.scales, "mirror": cfg.mirror, "average": cfg.average,
                      "on_tensors": bool(data is not None and data.eval_resize)},
            "checkpoints": _used_checkpoints(trainer, module), "weights": [m.weight for m in members],
            "input_sizes": [m.size for m in members], "world_size": trainer.world_size,
            "data": type(trainer.datamodule).__name__ if trainer.datamodule is not None else None,
        }
        paths = {"json": self.directory / f"{stage}.json", "csv": self.directory / f"{stage}_confusion.csv",
                 "png": self.directory / f"{stage}_confusion.png"}
        report["files"] = {k: str(v) for k, v in paths.items()}
        write_confusion_csv(confusion, names, paths["csv"])
        write_confusion_png(confusion, names, paths["png"])
        atomic_write(paths["json"], lambda tmp: tmp.write_text(json.dumps(report, indent=2) + "\n"))
        self.written = paths
        self.pending = table(report) + f"\n  report: {paths['json']} (+ {paths['csv'].name}, {paths['png'].name})"

    def teardown(self, trainer, module, stage: str) -> None:
        # printed once the progress bars are closed, so the table starts on a line of its own
        if getattr(self, "pending", None):
            print(self.pending, flush=True)
            self.pending = None


def _gather(rows: list) -> list:
    """Every process's rows, on every process (predict shares differ in length, so objects, not tensors)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return rows
    everyone: list = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, rows)
    return [row for part in everyone for row in part]


class PredictionWriter(Callback):
    """Predict writes ``predictions.csv`` in ``directory``: file, then ``top_k`` (label, probability)
    pairs, best first, one row per input in input order. Labels are the class names stored in the
    checkpoint (else the data's)."""

    def __init__(self, directory: str | Path, top_k: int = 5):
        self.path = Path(directory) / "predictions.csv"
        self.top_k = top_k
        self.rows: list[tuple[int, list[int], list[float]]] = []

    def on_predict_epoch_start(self, trainer, module) -> None:
        self.rows = []

    def on_predict_batch_end(self, trainer, module, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        probs = outputs.detach().float().cpu()
        values, labels = probs.topk(min(self.top_k, probs.shape[1]), dim=1)
        self.rows += list(zip(batch[1].tolist(), labels.tolist(), values.tolist()))

    def on_predict_end(self, trainer, module) -> None:
        rows = sorted(_gather(self.rows))
        if not trainer.is_global_zero:
            return
        count = module.evaluator.num_classes
        names = module.class_names
        if not names and trainer.ckpt_path:
            names = class_names_in(read_checkpoint(trainer.ckpt_path))
        names = names if names and len(names) == count else _class_names(trainer, module, count)
        data = _data(trainer)
        files = data.predict_names() if data is not None else None
        k = len(rows[0][1]) if rows else self.top_k

        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as handle:
                out = csv.writer(handle)
                out.writerow(["file"] + [f"{col}_{i}" for i in range(1, k + 1) for col in ("label", "prob")])
                for index, labels, values in rows:
                    pairs = [x for label, p in zip(labels, values) for x in (names[label], f"{p:.6f}")]
                    out.writerow([files[index] if files else index, *pairs])

        atomic_write(self.path, write)
        self.pending = f"predictions: {self.path} ({len(rows)} rows, top {k})"

    def teardown(self, trainer, module, stage: str) -> None:
        if getattr(self, "pending", None):  # after the progress bar's last line, not glued to it
            print(self.pending, flush=True)
            self.pending = None
