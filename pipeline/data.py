"""`python -m pipeline data optimize`: the command line of datamodules/optimize.py."""
from __future__ import annotations

import argparse

from .user_errors import UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's own default prints the usage too)
        raise UsageError(f"{self.prog}: {message}")


def data(argv: list[str]) -> int:
    parser = _Parser(prog="python -m pipeline data", description="Prepare datasets for training at scale.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    optimize = commands.add_parser(
        "optimize", help="write an image folder as LitData chunks for datamodules.StreamingDataModule",
        description="Write an image folder (root/train/<class>/*, root/val/<class>/*, or root/<class>/*) as "
                    "LitData chunks: the files' bytes as they are, labels, class names and the data table. "
                    "Run it again to continue after an interruption.")
    optimize.add_argument("--root", required=True, help="the image folder (the folder module's layouts)")
    optimize.add_argument("--out", required=True, help="an empty or new folder; a finished one is left as it is")
    optimize.add_argument("--workers", type=int, default=1, help="processes that check and write files (default 1)")
    optimize.add_argument("--val-fraction", type=float, default=0.1,
                          help="held-out share when the folder has no val/ (as the folder module's)")
    optimize.add_argument("--seed", type=int, default=0, help="seed of that split (as the folder module's)")
    optimize.add_argument("--skip-bad", action="store_true",
                          help="leave out (and list) files that do not decode instead of stopping")
    args = parser.parse_args(argv)
    from datamodules.optimize import optimize_folder  # imported lazily: LitData and albumentations are slow

    optimize_folder(args.root, args.out, args.workers, args.val_fraction, args.seed, args.skip_bad)
    return 0
