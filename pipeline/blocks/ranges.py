"""Bounds of block arguments, written once in the constructor's type hints.

``out: Count`` reads as ``int`` to the loader (``typing.get_type_hints`` drops ``Annotated``
metadata unless asked for it) and as "an integer >= 1" to the JSON Schema and the block reference,
which ask for the metadata. A bound here must be one that the block itself enforces (its constructor
raises a ``BlockError`` outside it); ``tests/test_schema_mistakes.py`` checks every bound against
the planner, so the annotation and the check cannot drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated


@dataclass(frozen=True)
class Range:
    """``minimum <= value <= maximum`` (either side open when ``exclusive_*``; None = unbounded)."""

    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False

    def text(self) -> str:
        """The bound as the README writes it: ">= 1", "in [0, 1)", "> 0"."""
        if self.minimum is not None and self.maximum is not None:
            left, right = "(" if self.exclusive_minimum else "[", ")" if self.exclusive_maximum else "]"
            return f"in {left}{_num(self.minimum)}, {_num(self.maximum)}{right}"
        if self.minimum is not None:
            return f"{'>' if self.exclusive_minimum else '>='} {_num(self.minimum)}"
        return f"{'<' if self.exclusive_maximum else '<='} {_num(self.maximum)}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


Count = Annotated[int, Range(1)]  # channels, groups, layers, strides, dilations: at least one
NonNegative = Annotated[int, Range(0)]  # paddings
Size = Count | list[Count]  # one size for every spatial dimension, or one per dimension ([h, w] in 2-D)
Padding = NonNegative | list[NonNegative]
Rate = Annotated[float, Range(0, 1, exclusive_maximum=True)]  # dropout and drop-path probabilities
PositiveFloat = Annotated[float, Range(0, exclusive_minimum=True)]  # epsilons, expansion ratios
Compression = Annotated[float, Range(0, 1, exclusive_minimum=True)]  # DenseNet-C's theta
SERatio = Annotated[float, Range(0, 64)]  # squeeze-excitation width as a fraction of channels (0 = none)
