"""`python -m pipeline lr-find --config ...`: Lightning's learning-rate range test (``Tuner.lr_find``).

The model, data and trainer come from the same configuration and overrides as ``fit``; the test
trains ``--lr_find.num_training`` steps with the learning rate growing exponentially from
``--lr_find.min_lr`` to ``--lr_find.max_lr``, then restores the initial weights. It prints the
suggested learning rate (steepest descent of the smoothed loss) and writes the loss curve as a PNG.
"""
from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path


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
    from lightning.pytorch import LightningDataModule
    from lightning.pytorch.tuner import Tuner

    from .cli import PipelineCLI, allow_checkpoint_globals
    from .module import ClassifierModule

    allow_checkpoint_globals()
    # "Seed set to N" is routine; on an error it would be a second stderr line before the message
    logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended.*")
    # a user's mistake (jsonargparse's or ours) is turned into one line and exit 2 by
    # user_errors.report, which every command of pipeline.cli goes through
    cli = PipelineCLI(ClassifierModule, LightningDataModule, subclass_mode_data=True, args=rest, run=False,
                      parser_kwargs={"exit_on_error": False}, auto_configure_optimizers=False)
    finder = Tuner(cli.trainer).lr_find(cli.model, datamodule=cli.datamodule, min_lr=options.min_lr,
                                        max_lr=options.max_lr, num_training=options.num_training,
                                        update_attr=False)
    if finder is None:  # not rank zero
        return 0
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    suggestion = finder.suggestion()
    figure = finder.plot(suggest=suggestion is not None)
    plot = Path(options.plot)
    plot.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(plot, dpi=100)
    if suggestion is None:
        print(f"no suggestion (the loss did not fall steadily over {len(finder.results['lr'])} steps); "
              f"curve written to {plot}")
    else:
        print(f"suggested learning rate: {suggestion:.3g} (--model.optimizer.lr {suggestion:.3g}); "
              f"curve written to {plot}")
    return 0
