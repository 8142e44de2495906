"""`python -m pipeline COMMAND`: model tools (summary, ...) and LightningCLI's fit/validate/test/predict.

A user's mistake ends with one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

import yaml

from .errors import ArchError

USAGE = """usage: python -m pipeline COMMAND ...

training (LightningCLI; see `python -m pipeline fit --help`):
  fit, validate, test, predict
  lr-find --config ... [--lr_find.plot PNG]   learning-rate range test: prints a suggestion, plots the curve

model tools:
  summary FILE [--input C,H,W] [--var NAME=VALUE ...] [--json] [--graph OUT.svg|.png|.dot]
  zoo [FOLDER]                      the architecture files with parameters and MACs
  import-weights torchvision:NAME ARCH.yaml -o OUT.pt [--from-file STATE_DICT.pth]
  export ARCH.yaml [--weights OUT.pt] --format onnx|torchscript -o FILE
"""


class UsageError(Exception):
    """A bad command line: reported like an ArchError, with exit status 2."""


def parse_vars(items: list[str] | None) -> dict:
    """``["k=10", "unit=bottleneck"]`` -> ``{"k": 10, "unit": "bottleneck"}`` (values read as YAML)."""
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--var expects NAME=VALUE, got '{item}'")
        try:
            out[name.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            raise UsageError(f"--var {name}: cannot read value '{value}'") from None
    return out


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(","))
    except ValueError:
        raise UsageError(f"--input expects sizes like 3,224,224, got '{text}'") from None
    if not shape or any(d <= 0 for d in shape):
        raise UsageError(f"--input expects positive sizes like 3,224,224, got '{text}'")
    return shape


def _add_var(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--var", action="append", metavar="NAME=VALUE", help="override a variable (repeatable)")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's own default prints the usage too)
        raise UsageError(f"{self.prog}: {message}")


def summary(argv: list[str]) -> int:
    parser = _Parser(prog="python -m pipeline summary",
                     description="Print every node of an architecture with its output shape, parameters and MACs.")
    parser.add_argument("file", help="architecture YAML file")
    parser.add_argument("--input", help="input shape C,H,W (or C,L) replacing the file's 'input'")
    _add_var(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--graph", metavar="FILE", help="also draw the graph: .svg/.png (Graphviz) or .dot")
    args = parser.parse_args(argv)
    from .language import plan_model
    from .summary import as_json, table, write_graph

    plan = plan_model(args.file, parse_shape(args.input), **parse_vars(args.var))
    print(json.dumps(as_json(plan)) if args.json else table(plan))
    if args.graph:
        path, note = write_graph(plan, args.graph)
        print(note or f"graph written to {path}", file=sys.stderr)
    return 0


def zoo(argv: list[str]) -> int:
    parser = _Parser(prog="python -m pipeline zoo",
                     description="List the architecture files of a folder with parameters and MACs (Markdown).")
    parser.add_argument("folder", nargs="?", default="architectures")
    args = parser.parse_args(argv)
    from .summary import zoo_table

    print(zoo_table(args.folder), end="")
    return 0


def import_weights(argv: list[str]) -> int:
    parser = _Parser(prog="python -m pipeline import-weights",
                     description="Convert a torchvision model's weights into a state dict for a YAML architecture.")
    parser.add_argument("reference", help="torchvision:NAME, e.g. torchvision:resnet50")
    parser.add_argument("arch", help="architecture YAML file of the same network")
    parser.add_argument("-o", "--output", required=True, help="where to write the converted state dict (.pt)")
    parser.add_argument("--from-file", help="read the torchvision state dict from this file instead of downloading")
    _add_var(parser)
    args = parser.parse_args(argv)
    source, _, name = args.reference.partition(":")
    if source != "torchvision" or not name:
        raise UsageError(f"reference must look like torchvision:NAME, got '{args.reference}'")
    from .convert import convert_state_dict, load_converted, reference_state_dict, save_atomic
    from .language import build_model

    model = build_model(args.arch, **parse_vars(args.var))
    state = convert_state_dict(reference_state_dict(name, args.from_file), model, name)
    load_converted(model, state)  # proves the result loads before anything is written
    save_atomic(model.state_dict(), args.output)
    print(f"wrote {args.output}: {len(state)} tensors from torchvision '{name}' into {args.arch}")
    return 0


def export(argv: list[str]) -> int:
    parser = _Parser(prog="python -m pipeline export",
                     description="Export the inference network (no auxiliary heads) to ONNX or TorchScript.")
    parser.add_argument("arch", help="architecture YAML file")
    parser.add_argument("--weights", help="state dict to load first (e.g. from import-weights or a training run)")
    parser.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    parser.add_argument("-o", "--output", required=True, help="file to write")
    parser.add_argument("--input", help="input shape C,H,W replacing the file's 'input'")
    _add_var(parser)
    args = parser.parse_args(argv)
    from .convert import ConversionError, load_converted, load_state_file
    from .export import export as write
    from .language import build_model

    model = build_model(args.arch, parse_shape(args.input), **parse_vars(args.var))
    if args.weights:
        try:
            load_converted(model, load_state_file(args.weights))
        except ConversionError as err:
            raise ConversionError(err.message if err.message.startswith(args.weights) else
                                  f"{args.weights}: {err.message}") from None
    path = write(model, args.format, args.output)
    print(f"wrote {path} ({args.format}, input {'x'.join(map(str, model.input_shape))}, batch dimension dynamic)")
    return 0


TOOLS: dict[str, Callable[[list[str]], int]] = {"summary": summary, "zoo": zoo, "import-weights": import_weights,
                                                "export": export}


TRAINING = ("fit", "validate", "test", "predict")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    try:
        if argv[0] in TOOLS:
            return TOOLS[argv[0]](argv[1:])
        if argv[0] not in (*TRAINING, "lr-find") and not argv[0].startswith("-"):
            raise UsageError(f"unknown command '{argv[0]}'; commands: {', '.join([*TRAINING, 'lr-find', *TOOLS])}")
        if argv[0] == "lr-find":
            from .training.lrfind import lr_find

            return lr_find(argv[1:])
        from .training.cli import run_lightning  # imported lazily: Lightning is slow to import

        return run_lightning(argv)
    except (ArchError, UsageError) as err:
        print(f"error: {err}" if isinstance(err, UsageError) else str(err), file=sys.stderr)
        return 2
