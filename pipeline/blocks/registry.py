"""Block names -> block classes. Registering a block is one decorator line on its class."""
from __future__ import annotations

from .base import Block

BLOCKS: dict[str, type[Block]] = {}


def register(name: str):
    """Class decorator: make ``cls`` available in architecture files as ``block: name``."""

    def add(cls: type[Block]) -> type[Block]:
        if name in BLOCKS:
            raise RuntimeError(f"block '{name}' is registered twice ({BLOCKS[name].__name__}, {cls.__name__})")
        if not issubclass(cls, Block):
            raise TypeError(f"{cls.__name__} must subclass pipeline.blocks.Block")
        BLOCKS[name] = cls
        cls.block_name = name  # for messages of code shared by several blocks (a subclass has its own name)
        return cls

    return add
