"""Declarative CNN training: architectures as YAML graphs of blocks, trained with Lightning."""
from __future__ import annotations

import importlib
from typing import Any

from .errors import ArchError

__all__ = ["ArchError", "AuxOutput", "GraphNet", "TrainOutput", "build_model", "plan_model"]


def __getattr__(name: str) -> Any:
    # the language (and torch) is imported on first use: `python -m pipeline --help` imports this
    # package first and should answer at once
    if name in __all__:
        return getattr(importlib.import_module(".language", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
