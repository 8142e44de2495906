"""The one error type for a user's mistake, always carrying where it was made."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Loc:
    """A position in a YAML file; line and column are 1-based, as editors show them."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class ArchError(Exception):
    """A mistake in an architecture file (or in the values that override it).

    ``str(err)`` is the single line shown to the user: ``FILE:LINE:COL: node 'x': what was expected``.
    """

    def __init__(self, message: str, loc: Loc | None = None, node: str | None = None):
        self.message = message
        self.loc = loc
        self.node = node
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.loc}: " if self.loc else ""
        who = f"node '{self.node}': " if self.node else ""
        return f"{where}{who}{self.message}"

    def at(self, loc: Loc | None = None, node: str | None = None) -> "ArchError":
        """Fill in the location/node if an inner layer did not know them."""
        return ArchError(self.message, self.loc or loc, self.node or node)


class BlockError(ValueError):
    """Raised by a block's constructor for bad arguments or incompatible input shapes.

    Blocks do not know where they were declared; the builder adds file, line and node, and the
    position of the argument named by ``arg`` when there is one.
    """

    def __init__(self, message: str, arg: str | None = None):
        super().__init__(message)
        self.arg = arg
