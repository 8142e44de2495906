"""`python -m pipeline COMMAND`: model tools (summary, ...) and LightningCLI's fit/validate/test/predict.

A user's mistake ends with one line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

import yaml

from .data import data as data_command
from .user_errors import UsageError, report, writable_file

USAGE = """usage: python -m pipeline COMMAND ...

training (LightningCLI; see `python -m pipeline fit --help`):
  fit, validate, test, predict
  lr-find --config ... [--lr_find.plot PNG]   learning-rate range test: prints a suggestion, plots the curve

model tools:
  summary FILE [--input C,H,W] [--var NAME=VALUE ...] [--json] [--graph OUT.svg|.png|.dot]
          [--expand NAME ...] [--depth K]   diagram with these nodes/block types opened as clusters
          [--batch B] [--precision 32|bf16] [--optimizer NAME]   receptive fields, memory estimate
  schema [-o FILE]                  the JSON Schema of architecture files (editor completion)
  zoo [FOLDER]                      the architecture files with parameters and MACs
  blocks [--markdown]               every block with its arguments (types, defaults, meanings)
  import-weights torchvision:NAME|timm:NAME ARCH.yaml -o OUT.pt [--from-file STATE_DICT.pth]
  export ARCH.yaml [--weights OUT.pt] --format onnx|torchscript -o FILE

experiments (the papers' comparisons; experiments/*.yaml):
  experiment NAME [--out DIR] [--results DIR] [--runs A,B] [--seeds K] [--workers N] [fit options ...]
  sweep SPEC.yaml [--out DIR] [--storage URL] [--study NAME] [--workers N] [--trials N] [fit options ...]
                                    search fit options with Optuna (each trial a fit run), on one or many machines

data at scale (LitData chunks for datamodules.StreamingDataModule):
  data optimize --root FOLDER --out DIR [--workers N] [--skip-bad]
"""


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


def plan_with_input(file: str, input_text: str | None, var: list[str] | None):
    """Plan ``file`` with ``--input`` and ``--var``. Blocks work in any number of dimensions, so an
    ``--input`` with a size left out (3,64 for 3,64,64) would quietly plan another net: refused."""
    from .language import plan_model

    shape = parse_shape(input_text)
    plan = plan_model(file, shape, **parse_vars(var))
    declared = plan.file_input
    if shape is not None and declared is not None and len(declared) != len(shape):
        names = {1: "C", 2: "C,L", 3: "C,H,W", 4: "C,D,H,W"}.get(len(declared), "")
        raise UsageError(f"--input {input_text} has {len(shape)} sizes but {file}'s input {list(declared)} has "
                         f"{len(declared)}: give all {len(declared)} ({names})")
    return plan


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
    parser.add_argument("--expand", action="append", default=[], metavar="NAME",
                        help="in --graph, open this node or block type as a cluster (repeatable)")
    parser.add_argument("--depth", type=int, default=1, help="in --graph, open nodes down to this level (1: none)")
    parser.add_argument("--batch", type=int, default=1, help="batch size for activation and training memory")
    parser.add_argument("--precision", default="32", choices=["32", "bf16", "16"],
                        help="training precision for the memory estimate (bf16/16: mixed, with autocast)")
    parser.add_argument("--optimizer", default="sgd", help="optimizer whose state the memory estimate counts")
    args = parser.parse_args(argv)
    if args.graph:
        writable_file(args.graph, "--graph")
    if args.batch <= 0:
        raise UsageError(f"--batch must be a positive integer, got {args.batch}")
    from .analysis import analyse
    from .summary import as_json, table

    plan = plan_with_input(args.file, args.input, args.var)
    if args.depth < 1:
        raise UsageError(f"--depth must be at least 1, got {args.depth}")
    if args.expand:
        from .diagram import unknown_expand

        unknown = unknown_expand(plan, args.expand)
        if unknown:
            raise UsageError(f"--expand {unknown[0]}: no node or block type of that name in {args.file}")
    analysis = analyse(plan, args.batch, args.precision, args.optimizer)
    print(json.dumps(as_json(plan, analysis)) if args.json else table(plan, analysis))
    if args.graph:
        from .diagram import write

        path, note = write(plan, args.graph, args.expand, args.depth)
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


def blocks(argv: list[str]) -> int:
    parser = _Parser(prog="python -m pipeline blocks",
                     description="List every block with its arguments: type, default and meaning.")
    parser.add_argument("--markdown", action="store_true", help="print the README's block reference (Markdown)")
    args = parser.parse_args(argv)
    from .reference import markdown, text

    print(markdown() if args.markdown else text(), end="")
    return 0


def schema(argv: list[str]) -> int:
    parser = _Parser(prog="python -m pipeline schema",
                     description="Write the JSON Schema (draft 2020-12) of architecture files, from the block registry.")
    parser.add_argument("-o", "--output", help="write to this file (default: print it)")
    args = parser.parse_args(argv)
    from .schema import dump

    text = dump()
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def import_weights(argv: list[str]) -> int:
    parser = _Parser(prog="python -m pipeline import-weights",
                     description="Convert a torchvision or timm model's weights into a state dict for a YAML architecture.")
    parser.add_argument("reference", help="torchvision:NAME or timm:NAME, e.g. torchvision:resnet50")
    parser.add_argument("arch", help="architecture YAML file of the same network")
    parser.add_argument("-o", "--output", required=True, help="where to write the converted state dict (.pt)")
    parser.add_argument("--from-file", help="read the reference state dict from this file instead of downloading")
    _add_var(parser)
    args = parser.parse_args(argv)
    source, _, name = args.reference.partition(":")
    from .convert import SOURCES, convert_state_dict, load_converted, reference_state_dict, save_atomic

    if source not in SOURCES or not name:
        raise UsageError(f"reference must look like torchvision:NAME or timm:NAME, got '{args.reference}'")
    writable_file(args.output, "-o")
    if source == "torchvision":
        import torchvision

        if name not in torchvision.models.list_models():
            from .errors import close_matches

            raise UsageError(f"unknown torchvision model '{name}'{close_matches(name, torchvision.models.list_models())}")
    from .language import build_model

    from .export import net_weights

    model = build_model(args.arch, **parse_vars(args.var))
    reference = reference_state_dict(name, args.from_file, source)
    state = convert_state_dict(net_weights(reference)[0] if args.from_file else reference, model, name)
    load_converted(model, state)  # proves the result loads before anything is written
    save_atomic(model.state_dict(), args.output)
    print(f"wrote {args.output}: {len(state)} tensors from {source} '{name}' into {args.arch}")
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
    writable_file(args.output, "-o")
    from .convert import ConversionError, load_converted, load_state_file
    from .export import export as write, net_weights
    from .language.build import materialize

    plan = plan_with_input(args.arch, args.input, args.var)
    import torch

    from .memory import check_memory

    check_memory(plan, 1, torch.device("cpu"), "32", False, args.arch, override="")  # traced at batch 1
    model = materialize(plan)
    what = "random weights"
    if args.weights:
        try:
            state, what = net_weights(load_state_file(args.weights))  # a state dict, or fit's checkpoint
            load_converted(model, state)
        except ConversionError as err:
            raise ConversionError(err.message if err.message.startswith(args.weights) else
                                  f"{args.weights}: {err.message}") from None
        what = f"{what} of {args.weights}"
    path = write(model, args.format, args.output)
    print(f"wrote {path} ({args.format}, {what}, input {'x'.join(map(str, model.input_shape))}, "
          "batch dimension dynamic)")
    return 0


def experiment(argv: list[str]) -> int:
    from .sweep.experiment import run_experiment  # imported lazily: Optuna and Lightning are slow to import

    return run_experiment(argv)


def sweep(argv: list[str]) -> int:
    from .sweep import run_sweep  # imported lazily: Optuna and Lightning are slow to import

    return run_sweep(argv)


TOOLS: dict[str, Callable[[list[str]], int]] = {"summary": summary, "zoo": zoo, "import-weights": import_weights,
                                                "export": export, "blocks": blocks, "experiment": experiment,
                                                "schema": schema, "data": data_command, "sweep": sweep}


TRAINING = ("fit", "validate", "test", "predict")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    return report(lambda: _run(argv))  # a user's mistake: one line, exit 2 (pipeline/user_errors.py)


def _run(argv: list[str]) -> int:
    if argv[0] in TOOLS:
        return TOOLS[argv[0]](argv[1:])
    if argv[0] not in (*TRAINING, "lr-find") and not argv[0].startswith("-"):
        raise UsageError(f"unknown command '{argv[0]}'; commands: {', '.join([*TRAINING, 'lr-find', *TOOLS])}")
    if argv[0] == "lr-find":
        from .training.lrfind import lr_find

        return lr_find(argv[1:])
    from .training.cli import run_lightning  # imported lazily: Lightning is slow to import

    return run_lightning(argv)
