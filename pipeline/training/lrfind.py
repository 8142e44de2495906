"""`python -m pipeline lr-find --config ...`: Lightning's learning-rate range test (``Tuner.lr_find``).

The model, data and trainer come from the same configuration and overrides as ``fit``; the test
trains ``--lr_find.num_training`` steps with the learning rate growing exponentially from
``--lr_find.min_lr`` to ``--lr_find.max_lr``, then restores the initial weights. It prints the
suggested learning rate and writes the loss curve as a PNG.

The curve and the suggestion are drawn from the loss of each step, not from Lightning's curve:
that one is an exponential average (beta 0.98) whose bias correction is one step off (its first
points read about half the loss, so the curve seems to *rise* at tiny rates) and which lags the
loss by about 50 steps, half the test; and Lightning's suggestion takes the slope against the
learning rate rather than its logarithm, which lands on noise just after that false peak. Here the
per-step losses are recovered from Lightning's average (exactly: it is a known linear recurrence),
smoothed by a centred window (no lag), and the suggestion is the rate of steepest descent per
decade of learning rate, before the smoothed minimum (past it the loss diverges).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path


LIGHTNING_BETA = 0.98  # Lightning's _LRCallback average
WINDOW = 9  # steps in the centred smoothing window (of 100 by default: about half a decade)
SKIP = 5  # first steps left out of the suggestion


def step_losses(averaged: list[float], beta: float = LIGHTNING_BETA) -> list[float]:
    """The loss of each step from Lightning's debiased average: its k-th value (k = 1, 2, ..., the
    step counter after the step) is a_k / (1 - beta**(k + 1)) with a_k = beta a_(k-1) + (1 - beta) loss_k."""
    losses, previous = [], 0.0
    for k, value in enumerate(averaged, 1):
        average = value * (1 - beta ** (k + 1))
        losses.append((average - beta * previous) / (1 - beta))
        previous = average
    return losses


def smoothed(losses: list[float], window: int = WINDOW) -> list[float]:
    """Centred moving average (shorter at the ends): it does not shift the curve to higher rates."""
    half = window // 2
    out = []
    for i in range(len(losses)):
        part = [x for x in losses[max(0, i - half):i + half + 1] if math.isfinite(x)]
        out.append(sum(part) / len(part) if part else float("nan"))
    return out


def suggest(lrs: list[float], losses: list[float]) -> float | None:
    """The learning rate where the smoothed loss falls fastest per decade, before its minimum; None
    when it never falls."""
    curve = [(lr, loss) for lr, loss in zip(lrs, smoothed(losses)) if lr > 0 and math.isfinite(loss)]
    if len(curve) < SKIP + 3:
        return None
    lowest = min(range(len(curve)), key=lambda i: curve[i][1])
    best, steepest = None, 0.0
    for i in range(SKIP, lowest):
        (lr0, l0), (lr1, l1) = curve[i - 1], curve[i + 1]
        slope = (l1 - l0) / (math.log10(lr1) - math.log10(lr0))
        if slope < steepest:
            best, steepest = curve[i][0], slope
    return best


def _options(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--lr_find.plot", dest="plot", default="lr_find.png")
    parser.add_argument("--lr_find.min_lr", dest="min_lr", type=float, default=1e-6)
    parser.add_argument("--lr_find.max_lr", dest="max_lr", type=float, default=1.0)
    parser.add_argument("--lr_find.num_training", dest="num_training", type=int, default=100)
    return parser.parse_known_args(argv)


def lr_find(argv: list[str]) -> int:
    """Returns the exit status; a user's mistake is one line on stderr and 2, like ``fit``."""
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip() + "\n\noptions: --lr_find.plot PNG (default lr_find.png), --lr_find.min_lr, "
              "--lr_find.max_lr, --lr_find.num_training; everything else as for fit (--config, --model.*, ...)")
        return 0
    options, rest = _options(argv)
    from ..user_errors import writable_file

    plot = writable_file(options.plot, "--lr_find.plot")  # before minutes of work, not after
    from lightning.pytorch import LightningDataModule
    from lightning.pytorch.tuner import Tuner

    from .cli import PipelineCLI, allow_checkpoint_globals, quiet_lightning
    from .module import ClassifierModule

    allow_checkpoint_globals()
    quiet_lightning()
    # a user's mistake (jsonargparse's or ours) is turned into one line and exit 2 by
    # user_errors.report, which every command of pipeline.cli goes through
    cli = PipelineCLI(ClassifierModule, LightningDataModule, subclass_mode_data=True, args=rest, run=False,
                      parser_kwargs={"exit_on_error": False, "prog": "python -m pipeline"}, auto_configure_optimizers=False)
    finder = Tuner(cli.trainer).lr_find(cli.model, datamodule=cli.datamodule, min_lr=options.min_lr,
                                        max_lr=options.max_lr, num_training=options.num_training,
                                        update_attr=False)
    if finder is None:  # not rank zero
        return 0
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    lrs, losses = finder.results["lr"], step_losses(finder.results["loss"])
    suggestion = suggest(lrs, losses)
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    axes.plot(lrs, losses, color="0.75", linewidth=0.8, label="loss per step")
    axes.plot(lrs, smoothed(losses), label=f"centred average of {WINDOW}")
    if suggestion is not None:
        axes.axvline(suggestion, color="tab:red", linestyle="--", label=f"suggested {suggestion:.3g}")
    axes.set(xscale="log", xlabel="learning rate", ylabel="training loss", title="learning-rate range test")
    axes.legend()
    plot.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(plot, dpi=100)
    plt.close(figure)
    if suggestion is None:
        print(f"no suggestion (the loss did not fall steadily over {len(lrs)} steps); "
              f"curve written to {plot}")
    else:
        print(f"suggested learning rate: {suggestion:.3g} (--model.optimizer.lr {suggestion:.3g}); "
              f"curve written to {plot}")
    return 0
