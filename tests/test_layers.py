"""The package's layers point one way (README, Development): every import of every module, those
inside functions included, goes to its own layer or one below, so no two layers import each other."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# lowest first; a module belongs to the first (longest) prefix that names it
LAYERS = [
    ["pipeline.errors", "datamodules.errors", "pipeline.user_errors"],
    ["pipeline.checkpoints"],
    ["pipeline.blocks"],
    ["pipeline.language"],
    ["pipeline.convert", "pipeline.export", "pipeline.summary", "pipeline.analysis", "pipeline.diagram",
     "pipeline.schema", "pipeline.reference", "pipeline.memory"],  # model tools: no Lightning
    ["datamodules"],
    ["pipeline.evaluation"],
    ["pipeline.training"],
    ["pipeline.cli", "pipeline.__main__", "pipeline"],
]


def layer(module: str) -> int:
    matches = [(len(prefix), rank) for rank, prefixes in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} is in no layer: add it to LAYERS"
    return max(matches)[1]


def modules() -> list[tuple[str, Path]]:
    found = []
    for package in ("pipeline", "datamodules"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return found


def imports(module: str, path: Path) -> set[str]:
    """Every project module ``module`` imports, anywhere in its file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from . import x` names modules too
    known = {m for m, _ in modules()}
    return {m for m in found if m in known}


@pytest.mark.parametrize("module, path", modules(), ids=[m for m, _ in modules()])
def test_imports_point_down(module, path):
    if module != "pipeline.__main__":  # importing that one runs the CLI
        importlib.import_module(module)  # and it imports on its own
    mine = layer(module)
    upward = sorted(m for m in imports(module, path) if layer(m) > mine)
    assert not upward, f"{module} (layer {mine}) imports from higher layers: {upward}"


def test_blocks_do_not_import_the_language():
    for module, path in modules():
        if module.startswith("pipeline.blocks"):
            assert not any(m.startswith("pipeline.language") for m in imports(module, path)), module


def test_the_check_sees_an_upward_import(tmp_path):
    bad = tmp_path / "evaluator.py"
    bad.write_text("def f():\n    from ..training.module import ClassifierModule\n")
    assert imports("pipeline.evaluation.evaluator", bad) == {"pipeline.training.module"}
    assert layer("pipeline.training.module") > layer("pipeline.evaluation.evaluator")


def test_the_cli_overrides_no_private_lightning_cli_method():
    """LightningCLI's public extension points only: a private method may change in any Lightning release."""
    from lightning.pytorch.cli import LightningCLI

    from pipeline.training.cli import PipelineCLI

    overridden = [name for klass in PipelineCLI.__mro__ if klass.__module__.startswith("pipeline")
                  for name in vars(klass) if callable(getattr(LightningCLI, name, None))]
    assert overridden, "PipelineCLI overrides nothing: the check would see nothing"
    private = [name for name in overridden if name.startswith("_") and not name.startswith("__")]
    assert not private, f"PipelineCLI overrides private LightningCLI methods: {private}"
